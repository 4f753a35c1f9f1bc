package httpapi

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/ticketrush/ticketrush"
)

// statuses is the one table from domain error code to HTTP status. A code
// missing here is a bug and answers 500.
var statuses = map[string]int{
	ticketrush.EInvalidJSON:          http.StatusBadRequest,
	ticketrush.EValidation:           http.StatusUnprocessableEntity,
	ticketrush.EVisitorTokenRequired: http.StatusBadRequest,
	ticketrush.EInvalidVisitorToken:  http.StatusBadRequest,
	ticketrush.EEventNotFound:        http.StatusNotFound,
	ticketrush.EReservationNotFound:  http.StatusNotFound,
	ticketrush.ENotEnoughTickets:     http.StatusConflict,
	ticketrush.ESaleNotStarted:       http.StatusConflict,
	ticketrush.EVisitorLimit:         http.StatusConflict,
	ticketrush.EAlreadyPurchased:     http.StatusConflict,
	ticketrush.ECancelled:            http.StatusConflict,
	ticketrush.EExpired:              http.StatusGone,
	ticketrush.EIdempotencyKeyReused: http.StatusUnprocessableEntity,
	ticketrush.EUnauthorized:         http.StatusUnauthorized,
	ticketrush.EBodyTooLarge:         http.StatusRequestEntityTooLarge,
	ticketrush.ENotFound:             http.StatusNotFound,
	ticketrush.EMethodNotAllowed:     http.StatusMethodNotAllowed,
	ticketrush.EUnsupportedMedia:     http.StatusUnsupportedMediaType,
	ticketrush.ERateLimited:          http.StatusTooManyRequests,
	ticketrush.EOverloaded:           http.StatusServiceUnavailable,
	ticketrush.EUnavailable:          http.StatusServiceUnavailable,
	ticketrush.EOutcomeUnknown:       http.StatusServiceUnavailable,
	ticketrush.EInternal:             http.StatusInternalServerError,
	ticketrush.EBadRequest:           http.StatusBadRequest,
	ticketrush.EHeadersTooLarge:      http.StatusRequestHeaderFieldsTooLarge,
	ticketrush.ECrossSiteRequest:     http.StatusForbidden,
	ticketrush.ETooManyStreams:       http.StatusTooManyRequests,
	ticketrush.EAdminDisabled:        http.StatusForbidden,
	ticketrush.ESaleClosed:           http.StatusConflict,
	ticketrush.EOrderLimit:           http.StatusConflict,
	ticketrush.EEventHasReservations: http.StatusConflict,
	ticketrush.EWaitingRoomNotFound:  http.StatusNotFound,
	ticketrush.ENotInQueue:           http.StatusNotFound,
	ticketrush.EQueueNotOpen:         http.StatusConflict,
	ticketrush.EChallengeFailed:      http.StatusUnprocessableEntity,
	ticketrush.EAdmissionRequired:    http.StatusForbidden,
	ticketrush.EAdmissionInvalid:     http.StatusForbidden,
	ticketrush.EAdmissionExpired:     http.StatusForbidden,
}

// StatusOf returns the HTTP status of a domain error code.
func StatusOf(code string) int {
	if s, ok := statuses[code]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// internalMessage is all a client learns of an unexpected failure.
const internalMessage = "Internal error."

// classify turns any error into the code and message a client may see.
// Deadline and cancellation errors that reach the handler unwrapped mean the
// database did not answer in time: the client may retry.
func classify(err error) (code, msg string) {
	code = ticketrush.ErrorCode(err)
	if code == ticketrush.EInternal && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
		return ticketrush.EUnavailable, ticketrush.Unavailable(err).Message
	}
	if _, ok := statuses[code]; !ok || code == ticketrush.EInternal {
		return ticketrush.EInternal, internalMessage
	}
	msg = ticketrush.ErrorMessage(err)
	if msg == "" {
		msg = http.StatusText(StatusOf(code))
	}
	return code, msg
}

// writeError answers with err as a JSON error. Internal errors are logged
// with their cause; the client only sees "Internal error.".
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, msg := classify(err)
	status := StatusOf(code)
	var fields map[string]string
	if code == ticketrush.EValidation {
		var e *ticketrush.Error
		if errors.As(err, &e) {
			fields = e.Fields
		}
	}
	switch {
	case status == http.StatusInternalServerError:
		s.log.LogAttrs(r.Context(), slog.LevelError, "internal error",
			slog.String("method", r.Method), slog.String("route", routeOf(r)),
			slog.String("visitor", redactToken(r.Header.Get(headerVisitorToken))),
			slog.Any("err", err))
	case code == ticketrush.EUnavailable && r.Context().Err() == nil && s.outageLog.Allow():
		// An outage is worth a line a second, not one per request; a
		// client that hung up is worth none.
		s.log.LogAttrs(r.Context(), slog.LevelWarn, "database unavailable",
			slog.String("method", r.Method), slog.String("route", routeOf(r)),
			slog.Any("err", err))
	}
	switch w := w.(type) {
	case *responseWriter:
		w.code = code
	case passthrough:
		w.rw.code = code
	}
	if status == http.StatusServiceUnavailable || status == http.StatusTooManyRequests {
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="ticketrush admin"`)
	}
	writeJSON(w, status, ErrorBody{Error: ErrorDetail{Code: code, Message: msg, Fields: fields}})
}

// redactToken keeps enough of a visitor token to correlate log lines
// without letting the log impersonate the visitor.
func redactToken(t string) string {
	if t == "" {
		return ""
	}
	if len(t) > 8 {
		t = t[:8]
	}
	return t + "…"
}
