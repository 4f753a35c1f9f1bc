// Package ticketrush is the domain of a ticket-rush service: events with a
// fixed number of tickets, reservations that hold tickets for a few minutes,
// and the Store contract every backend implements.
//
// The package imports no storage or HTTP code. Backends live in sqlite,
// postgres and redis; the HTTP API in httpapi; group commit in batch; the
// conformance suite every backend passes in storetest.
//
// The invariant every backend keeps, after any sequence of operations and
// under any concurrency:
//
//	capacity == ticket_quantity + held + purchased
//
// where held is the sum of amounts of reservations in status reserved and
// purchased the sum of those in status purchased.
package ticketrush

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Reservation statuses.
const (
	StatusReserved  = "reserved"
	StatusPurchased = "purchased"
	StatusCancelled = "cancelled"
	StatusExpired   = "expired"
)

// Limits on input, shared by validation in every layer.
const (
	MaxAmount         = 10000
	MaxNameLength     = 200
	MaxTicketQuantity = 100_000_000
	MaxHoldSeconds    = 86400
	// MaxIdempotencyKey is the longest Idempotency-Key accepted, in bytes.
	MaxIdempotencyKey = 128
	// DefaultHold is the original's hold time.
	DefaultHold = 5 * time.Minute
)

// Event is a sale: ticket_quantity is what is still on sale, capacity what
// was ever on sale.
type Event struct {
	ID             int64
	Name           string
	TicketQuantity int64
	Capacity       int64
	HoldSeconds    int64
	// MaxPerVisitor caps the tickets one visitor may hold plus have bought
	// for this event; 0 means no cap.
	MaxPerVisitor int64
	// SaleStartsAt is when reserves are first accepted; nil means at once.
	SaleStartsAt *time.Time
	// MaxPerOrder is the most tickets one reserve may take (1…MaxAmount).
	MaxPerOrder int64
	// Hidden events are left out of the public listing but stay readable
	// by id; rehearsal events are made hidden.
	Hidden bool
	// SaleClosed stops reserves (ESaleClosed); purchases and cancels of
	// existing holds go on.
	SaleClosed bool
	// WaitingRoom, when set, admits visitors through a queue and every
	// reserve needs an admission pass (see CheckAdmission).
	WaitingRoom *WaitingRoom
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// NewEvent is what an organiser gives to create an event.
type NewEvent struct {
	Name           string
	TicketQuantity int64
	// HoldSeconds must be set (1…MaxHoldSeconds); the HTTP layer fills the
	// server's default when a request omits it.
	HoldSeconds   int64
	MaxPerVisitor int64
	SaleStartsAt  *time.Time
	// MaxPerOrder caps one reserve (1…MaxAmount); 0 means
	// DefaultMaxPerOrder. Backends store OrderLimit().
	MaxPerOrder int64
	Hidden      bool
	WaitingRoom *WaitingRoom
}

// OrderLimit returns MaxPerOrder with the default filled in.
func (e NewEvent) OrderLimit() int64 {
	if e.MaxPerOrder == 0 {
		return DefaultMaxPerOrder
	}
	return e.MaxPerOrder
}

// Validate checks every field and returns an EValidation error naming each
// bad one.
func (e NewEvent) Validate() error {
	v := ValidationError{}
	validateName(v, e.Name)
	if e.TicketQuantity < 1 || e.TicketQuantity > MaxTicketQuantity {
		v.Add("ticket_quantity", "must be an integer from 1 to 100000000")
	}
	if e.HoldSeconds < 1 || e.HoldSeconds > MaxHoldSeconds {
		v.Add("hold_seconds", "must be an integer from 1 to 86400")
	}
	if e.MaxPerVisitor < 0 || e.MaxPerVisitor > MaxTicketQuantity {
		v.Add("max_per_visitor", "must be an integer from 0 (no limit) to 100000000")
	}
	if e.MaxPerOrder != 0 {
		validateMaxPerOrder(v, e.MaxPerOrder)
	}
	if e.WaitingRoom != nil {
		e.WaitingRoom.validate(v, "waiting_room")
	}
	return v.Err()
}

func validateName(v ValidationError, name string) {
	switch {
	case strings.TrimSpace(name) == "":
		v.Add("name", "is required")
	case !utf8.ValidString(name):
		v.Add("name", "must be valid UTF-8")
	case utf8.RuneCountInString(name) > MaxNameLength:
		v.Add("name", "must be at most 200 characters")
	}
}

func validateMaxPerOrder(v ValidationError, n int64) {
	if n < 1 || n > MaxAmount {
		v.Add("max_per_order", "must be an integer from 1 to 10000")
	}
}

// Reservation is a hold of Amount tickets by one visitor; it becomes
// purchased, cancelled or expired.
type Reservation struct {
	ID        int64
	EventID   int64
	UserUID   string
	Status    string
	Amount    int64
	ExpiresAt time.Time
	CreatedAt time.Time
	UpdatedAt time.Time
	// IdempotencyKey is the client's Idempotency-Key, "" when none was sent.
	IdempotencyKey string
}

// ReserveRequest asks for Amount tickets of EventID for a visitor.
type ReserveRequest struct {
	EventID int64
	Amount  int64
	// VisitorToken is a UUID in canonical lower-case form (see
	// ParseVisitorToken); the HTTP layer creates one when the client sent
	// none.
	VisitorToken string
	// IdempotencyKey is optional: a repeated request with the same key and
	// visitor returns the first reservation and takes no more tickets.
	IdempotencyKey string
	// Admission is the queue attempt named by the visitor's verified
	// admission pass, 0 when none was sent (see CheckAdmission).
	Admission int64
}

// Validate checks the fields a client controls.
func (r ReserveRequest) Validate() error {
	v := ValidationError{}
	if r.EventID < 1 {
		v.Add("event_id", "must be a positive integer")
	}
	if r.Amount < 1 || r.Amount > MaxAmount {
		v.Add("amount", "must be an integer from 1 to 10000")
	}
	if err := v.Err(); err != nil {
		return err
	}
	if _, err := ParseVisitorToken(r.VisitorToken); err != nil {
		return err
	}
	return ValidateIdempotencyKey(r.IdempotencyKey)
}

// SameBody reports whether two requests under one idempotency key ask for
// the same thing.
func (r ReserveRequest) SameBody(res *Reservation) bool {
	return r.EventID == res.EventID && r.Amount == res.Amount
}

// ReserveResult is the outcome of one request in a batch: exactly one of
// Reservation and Err is set.
type ReserveResult struct {
	Reservation *Reservation
	Err         error
}

// Stats counts an event's tickets by state.
type Stats struct {
	EventID   int64
	Capacity  int64
	Available int64
	Held      int64
	Purchased int64
	Expired   int64
	Cancelled int64
}

// ParseVisitorToken checks that s is a UUID and returns it in lower case,
// so one visitor is one key in every backend.
func ParseVisitorToken(s string) (string, error) {
	if s == "" {
		return "", Errorf(EVisitorTokenRequired, "The Visitor-Token header is required.")
	}
	if !isUUID(s) {
		return "", Errorf(EInvalidVisitorToken, "The Visitor-Token header must be a UUID.")
	}
	return strings.ToLower(s), nil
}

// isUUID reports whether s is 8-4-4-4-12 hex digits. Every request carries
// a token, so this is checked by hand rather than by a regular expression.
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case i == 8 || i == 13 || i == 18 || i == 23:
			if c != '-' {
				return false
			}
		case '0' <= c && c <= '9', 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
		default:
			return false
		}
	}
	return true
}

// ValidateIdempotencyKey accepts "" (no key) or 1…128 printable ASCII
// characters.
func ValidateIdempotencyKey(k string) error {
	if len(k) > MaxIdempotencyKey {
		return &Error{Code: EValidation, Message: "The request is invalid.",
			Fields: map[string]string{"Idempotency-Key": "must be at most 128 characters"}}
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return &Error{Code: EValidation, Message: "The request is invalid.",
				Fields: map[string]string{"Idempotency-Key": "must be printable ASCII without spaces"}}
		}
	}
	return nil
}

// ParseID parses an id as clients write it in a path: a positive decimal
// int64 without sign or leading zeros, so each id has one spelling.
func ParseID(s string) (int64, error) {
	bad := func() error {
		v := ValidationError{}
		v.Add("id", "must be a positive integer")
		return v.Err()
	}
	if s == "" || s[0] == '0' || len(s) > 19 {
		return 0, bad()
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, bad()
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, bad()
	}
	return id, nil
}
