package ticketrush

import (
	"errors"
	"fmt"
)

// Error codes. Each is part of the public API: it is the "code" field of an
// error response, and the HTTP package maps each to one status in one table.
const (
	EInvalidJSON          = "invalid_json"
	EValidation           = "validation_failed"
	EVisitorTokenRequired = "visitor_token_required"
	EInvalidVisitorToken  = "invalid_visitor_token"
	EEventNotFound        = "event_not_found"
	EReservationNotFound  = "reservation_not_found"
	ENotEnoughTickets     = "not_enough_tickets"
	ESaleNotStarted       = "sale_not_started"
	EVisitorLimit         = "visitor_limit_exceeded"
	EAlreadyPurchased     = "reservation_already_purchased"
	ECancelled            = "reservation_cancelled"
	EExpired              = "reservation_expired"
	EIdempotencyKeyReused = "idempotency_key_reused"
	EUnauthorized         = "unauthorized"
	EBodyTooLarge         = "body_too_large"
	ENotFound             = "not_found"
	EMethodNotAllowed     = "method_not_allowed"
	EUnsupportedMedia     = "unsupported_media_type"
	ERateLimited          = "rate_limited"
	// EOverloaded means the reserve queue of an event is full: the client
	// should retry after a short pause. Nothing was changed.
	EOverloaded = "overloaded"
	// EUnavailable means the request failed before anything was sent to
	// the database, or the database refused it as a whole: nothing was
	// applied and the client may retry.
	EUnavailable = "unavailable"
	// EOutcomeUnknown means the request may have been applied: it reached
	// the database but its answer was lost (a deadline after COMMIT was
	// sent, a connection cut mid-reply). A retry with the same
	// Visitor-Token and Idempotency-Key returns the reservation if it
	// exists.
	EOutcomeUnknown = "outcome_unknown"
	EInternal       = "internal"

	// Request hygiene.
	//
	// EBadRequest is a request that is not valid HTTP/1.1 (a malformed
	// request line or header, no Host, an unknown transfer coding);
	// EHeadersTooLarge a header block over the server's limit.
	EBadRequest       = "bad_request"
	EHeadersTooLarge  = "headers_too_large"
	ECrossSiteRequest = "cross_site_request"
	ETooManyStreams   = "too_many_streams"
	EAdminDisabled    = "admin_disabled"

	// Event lifecycle and safe defaults.
	ESaleClosed           = "sale_closed"
	EOrderLimit           = "order_limit_exceeded"
	EEventHasReservations = "event_has_reservations"

	// The waiting room.
	EWaitingRoomNotFound = "waiting_room_not_found"
	ENotInQueue          = "not_in_queue"
	EQueueNotOpen        = "queue_not_open"
	EChallengeFailed     = "challenge_failed"
	EAdmissionRequired   = "admission_required"
	EAdmissionInvalid    = "admission_invalid"
	EAdmissionExpired    = "admission_expired"
)

// Error is a domain error: a machine-readable code, a message fit to show a
// visitor, optional per-field messages for validation, and the underlying
// cause, which is logged but never shown.
type Error struct {
	Code    string
	Message string
	Fields  map[string]string
	Err     error
}

// Error implements the error interface.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Errorf returns a domain error with the given code and message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Unavailable wraps a database failure: the client sees 503 and the code
// EUnavailable, the log sees the cause.
func Unavailable(err error) *Error {
	return &Error{Code: EUnavailable, Message: "The service is temporarily unavailable, please retry.", Err: err}
}

// OutcomeUnknown wraps a failure after which the database may or may not
// have applied the request: the client sees 503 and EOutcomeUnknown.
func OutcomeUnknown(err error) *Error {
	return &Error{Code: EOutcomeUnknown, Message: "The outcome is unknown: the request may have been applied. Retry with the same Visitor-Token and Idempotency-Key to find out.", Err: err}
}

// ErrorCode returns the code of a domain error, EInternal for any other
// non-nil error, and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Code
	default:
		return EInternal
	}
}

// ErrorMessage returns the message of a domain error, or a generic text for
// any other error so internals never reach a client.
func ErrorMessage(err error) string {
	var e *Error
	switch {
	case err == nil:
		return ""
	case errors.As(err, &e):
		return e.Message
	default:
		return "Internal error."
	}
}

// ValidationError collects per-field messages; it is an error only once a
// field has been added.
type ValidationError map[string]string

// Add records a message for a field, keeping the first one.
func (v ValidationError) Add(field, msg string) {
	if _, ok := v[field]; !ok {
		v[field] = msg
	}
}

// Err returns nil when no field failed, else an EValidation error.
func (v ValidationError) Err() error {
	if len(v) == 0 {
		return nil
	}
	return &Error{Code: EValidation, Message: "The request is invalid.", Fields: v}
}

// The domain's refusals, one constructor per code, so that every backend
// and strategy answers the same mistake with the same words. Backends call
// these rather than Errorf; a conformance case compares the messages.

// ErrEventNotFound: no event has the id.
func ErrEventNotFound() *Error { return Errorf(EEventNotFound, "Event not found.") }

// ErrReservationNotFound: no reservation has the id, or it belongs to
// another visitor (the two are indistinguishable on purpose).
func ErrReservationNotFound() *Error { return Errorf(EReservationNotFound, "Reservation not found.") }

// ErrSaleNotStarted: the event's sale_starts_at is still ahead.
func ErrSaleNotStarted() *Error {
	return Errorf(ESaleNotStarted, "The sale for this event has not started yet.")
}

// ErrVisitorLimit: the request would take the visitor past the event's
// max_per_visitor.
func ErrVisitorLimit(maxPerVisitor int64) *Error {
	return Errorf(EVisitorLimit, "This would exceed the limit of %d tickets per visitor.", maxPerVisitor)
}

// ErrNotEnoughTickets: the event's stock is below the amount asked for.
func ErrNotEnoughTickets() *Error { return Errorf(ENotEnoughTickets, "Not enough tickets available.") }

// ErrAlreadyPurchased: purchase or cancel of a purchased reservation.
func ErrAlreadyPurchased() *Error {
	return Errorf(EAlreadyPurchased, "This reservation is already purchased.")
}

// ErrCancelled: purchase of a cancelled reservation.
func ErrCancelled() *Error { return Errorf(ECancelled, "This reservation was cancelled.") }

// ErrExpired: purchase or cancel of a hold past its expiry.
func ErrExpired() *Error { return Errorf(EExpired, "Reservation has expired.") }

// The refusals of the event lifecycle and the waiting room, for the same
// reason: every backend says them in these words.

// ErrSaleClosed: a reserve on an event whose sale the organiser closed.
func ErrSaleClosed() *Error { return Errorf(ESaleClosed, "The sale for this event is closed.") }

// ErrOrderLimit: one reserve asks for more than the event's max_per_order.
func ErrOrderLimit(maxPerOrder int64) *Error {
	return Errorf(EOrderLimit, "One order may take at most %d tickets.", maxPerOrder)
}

// ErrEventHasReservations: DELETE of an event that has reservations.
func ErrEventHasReservations() *Error {
	return Errorf(EEventHasReservations, "This event has reservations and cannot be deleted; close its sale instead.")
}

// ErrWaitingRoomNotFound: the event has no waiting room.
func ErrWaitingRoomNotFound() *Error {
	return Errorf(EWaitingRoomNotFound, "This event has no waiting room.")
}

// ErrNotInQueue: the visitor never joined the event's queue.
func ErrNotInQueue() *Error { return Errorf(ENotInQueue, "This visitor has not joined the queue.") }

// ErrQueueNotOpen: a join before the waiting room's queue opens.
func ErrQueueNotOpen() *Error {
	return Errorf(EQueueNotOpen, "The queue for this event is not open yet.")
}

// ErrChallengeUsed: a waiting-room challenge answered a second time.
func ErrChallengeUsed() *Error {
	return Errorf(EChallengeFailed, "This challenge has already been used: fetch a new one.")
}

// ErrAdmissionRequired: a reserve without an Admission-Pass on an event
// with a waiting room.
func ErrAdmissionRequired() *Error {
	return Errorf(EAdmissionRequired, "This event has a waiting room: join the queue and reserve with your Admission-Pass.")
}

// ErrAdmissionInvalid: a pass for another visitor or event, or forged.
func ErrAdmissionInvalid() *Error {
	return Errorf(EAdmissionInvalid, "This Admission-Pass is not valid for this visitor and event.")
}

// ErrAdmissionUsed: a pass whose reserve already succeeded.
func ErrAdmissionUsed() *Error {
	return Errorf(EAdmissionInvalid, "This Admission-Pass has already been used.")
}

// ErrAdmissionExpired: a pass past its time.
func ErrAdmissionExpired() *Error {
	return Errorf(EAdmissionExpired, "This Admission-Pass has expired: join the queue again.")
}
