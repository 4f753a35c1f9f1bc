package httpapi

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/ticketrush/ticketrush"
)

// TimeFormat is how every time goes on the wire: RFC 3339 in UTC with
// exactly six fractional digits, as in the original's answers
// ("2025-11-18T07:54:23.000000Z").
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// Time is a time.Time that encodes in TimeFormat and decodes any RFC 3339
// time. It defines the JSON methods itself: the embedded time.Time's would
// otherwise be promoted and win, and they drop trailing zero digits.
type Time struct{ time.Time }

// MarshalText implements encoding.TextMarshaler.
func (t Time) MarshalText() ([]byte, error) {
	b := make([]byte, 0, len(TimeFormat))
	return appendTime(b, t.Time), nil
}

// MarshalJSON implements json.Marshaler.
func (t Time) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, len(TimeFormat)+2)
	b = append(b, '"')
	b = appendTime(b, t.Time)
	return append(b, '"'), nil
}

// appendTime appends t in TimeFormat. Every answer with a reservation has
// three times in it; this writes the fixed-width form directly rather
// than interpreting the layout each time (156 ns against 473: go test
// ./httpapi -bench AppendTime).
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, TimeFormat)
	}
	hour, minute, sec := t.Clock()
	b = appendDigits(b, year, 4)
	b = appendDigits(append(b, '-'), int(month), 2)
	b = appendDigits(append(b, '-'), day, 2)
	b = appendDigits(append(b, 'T'), hour, 2)
	b = appendDigits(append(b, ':'), minute, 2)
	b = appendDigits(append(b, ':'), sec, 2)
	b = appendDigits(append(b, '.'), t.Nanosecond()/1000, 6)
	return append(b, 'Z')
}

// appendDigits appends n, which is not negative, in exactly width digits.
func appendDigits(b []byte, n, width int) []byte {
	start := len(b)
	for range width {
		b = append(b, '0')
	}
	for i := len(b) - 1; i >= start && n > 0; i-- {
		b[i] = byte('0' + n%10)
		n /= 10
	}
	return b
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Time) UnmarshalText(b []byte) error {
	v, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return fmt.Errorf("parse time: %w", err)
	}
	t.Time = v.UTC()
	return nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (t *Time) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s, err := strconv.Unquote(string(b))
	if err != nil {
		return fmt.Errorf("parse time: %s is not a JSON string", b)
	}
	return t.UnmarshalText([]byte(s))
}

// Event is an event on the wire.
type Event struct {
	ID             int64  `json:"id"`
	Name           string `json:"name"`
	TicketQuantity int64  `json:"ticket_quantity"`
	Capacity       int64  `json:"capacity"`
	HoldSeconds    int64  `json:"hold_seconds"`
	MaxPerVisitor  int64  `json:"max_per_visitor"`
	// SaleStartsAt is null when the sale is open from the start.
	SaleStartsAt *Time `json:"sale_starts_at"`
	// MaxPerOrder is the most tickets one reserve may take.
	MaxPerOrder int64 `json:"max_per_order"`
	// SaleClosed stops reserves.
	SaleClosed bool `json:"sale_closed"`
	// WaitingRoom is null when the event has none.
	WaitingRoom *WaitingRoom `json:"waiting_room"`
	// Hidden appears in admin answers only.
	Hidden    *bool `json:"hidden,omitempty"`
	CreatedAt Time  `json:"created_at"`
	UpdatedAt Time  `json:"updated_at"`
}

// WaitingRoom is an event's waiting-room settings on the wire.
type WaitingRoom struct {
	AdmitPerMinute int64 `json:"admit_per_minute"`
	MaxActive      int64 `json:"max_active"`
	PassSeconds    int64 `json:"pass_seconds"`
	// PrequeueOpensAt is null when there is no pre-queue.
	PrequeueOpensAt *Time `json:"prequeue_opens_at"`
	ChallengeBits   int64 `json:"challenge_bits"`
	Paused          bool  `json:"paused"`
}

// Reservation is a reservation on the wire. UserUID is the visitor token.
type Reservation struct {
	ID        int64  `json:"id"`
	EventID   int64  `json:"event_id"`
	UserUID   string `json:"user_uid"`
	Amount    int64  `json:"amount"`
	Status    string `json:"status"`
	ExpiresAt Time   `json:"expires_at"`
	CreatedAt Time   `json:"created_at"`
	UpdatedAt Time   `json:"updated_at"`
}

// Stats are an event's counts on the wire, in tickets.
type Stats struct {
	EventID   int64 `json:"event_id"`
	Capacity  int64 `json:"capacity"`
	Available int64 `json:"available"`
	Held      int64 `json:"held"`
	Purchased int64 `json:"purchased"`
	Expired   int64 `json:"expired"`
	Cancelled int64 `json:"cancelled"`
	// Queue is the waiting room's figures, null when the event has none.
	Queue *QueueStats `json:"queue"`
}

// Envelope wraps every successful answer: {"data": …}.
type Envelope[T any] struct {
	Data T `json:"data"`
}

// ErrorBody is every error answer: {"error": {…}}.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the code, a message fit to show a visitor, and for
// validation_failed one message per bad field.
type ErrorDetail struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// Status is the answer of the health endpoints.
type Status struct {
	Status string `json:"status"`
}

func newEvent(e *ticketrush.Event) Event {
	w := Event{
		ID:             e.ID,
		Name:           e.Name,
		TicketQuantity: e.TicketQuantity,
		Capacity:       e.Capacity,
		HoldSeconds:    e.HoldSeconds,
		MaxPerVisitor:  e.MaxPerVisitor,
		MaxPerOrder:    e.MaxPerOrder,
		SaleClosed:     e.SaleClosed,
		CreatedAt:      Time{e.CreatedAt},
		UpdatedAt:      Time{e.UpdatedAt},
	}
	if e.SaleStartsAt != nil {
		w.SaleStartsAt = &Time{*e.SaleStartsAt}
	}
	if r := e.WaitingRoom; r != nil {
		w.WaitingRoom = &WaitingRoom{
			AdmitPerMinute: r.AdmitPerMinute,
			MaxActive:      r.MaxActive,
			PassSeconds:    r.PassSeconds,
			ChallengeBits:  r.ChallengeBits,
			Paused:         r.Paused,
		}
		if r.PrequeueOpensAt != nil {
			w.WaitingRoom.PrequeueOpensAt = &Time{*r.PrequeueOpensAt}
		}
	}
	return w
}

// newAdminEvent is an event as admin answers show it: with hidden.
func newAdminEvent(e *ticketrush.Event) Event {
	w := newEvent(e)
	hidden := e.Hidden
	w.Hidden = &hidden
	return w
}

func newReservation(r *ticketrush.Reservation) Reservation {
	return Reservation{
		ID:        r.ID,
		EventID:   r.EventID,
		UserUID:   r.UserUID,
		Amount:    r.Amount,
		Status:    r.Status,
		ExpiresAt: Time{r.ExpiresAt},
		CreatedAt: Time{r.CreatedAt},
		UpdatedAt: Time{r.UpdatedAt},
	}
}

func newStats(s *ticketrush.Stats) Stats {
	return Stats{
		EventID:   s.EventID,
		Capacity:  s.Capacity,
		Available: s.Available,
		Held:      s.Held,
		Purchased: s.Purchased,
		Expired:   s.Expired,
		Cancelled: s.Cancelled,
	}
}

// appendReservation appends {"data": r} exactly as encoding/json would,
// without reflection: reserve is the hot path of a rush, and its answer is
// most of the handler's own work.
func appendReservation(b []byte, r *Reservation) []byte {
	b = append(b, `{"data":{"id":`...)
	b = strconv.AppendInt(b, r.ID, 10)
	b = append(b, `,"event_id":`...)
	b = strconv.AppendInt(b, r.EventID, 10)
	b = append(b, `,"user_uid":`...)
	b = appendString(b, r.UserUID)
	b = append(b, `,"amount":`...)
	b = strconv.AppendInt(b, r.Amount, 10)
	b = append(b, `,"status":`...)
	b = appendString(b, r.Status)
	b = append(b, `,"expires_at":"`...)
	b = appendTime(b, r.ExpiresAt.Time)
	b = append(b, `","created_at":"`...)
	b = appendTime(b, r.CreatedAt.Time)
	b = append(b, `","updated_at":"`...)
	b = appendTime(b, r.UpdatedAt.Time)
	return append(b, `"}}`...)
}

// appendString appends s as a JSON string. The strings it gets (a UUID, a
// status) are plain ASCII; anything else is escaped as encoding/json would.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' || c >= 0x80 {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendQueueStatus appends {"data": q} exactly as encoding/json would,
// without reflection: polls are the waiting room's most frequent answer.
func appendQueueStatus(b []byte, q *QueueStatus) []byte {
	b = append(b, `{"data":{"event_id":`...)
	b = strconv.AppendInt(b, q.EventID, 10)
	b = append(b, `,"state":`...)
	b = appendString(b, q.State)
	b = append(b, `,"position":`...)
	b = appendOptInt(b, q.Position)
	b = append(b, `,"ahead":`...)
	b = appendOptInt(b, q.Ahead)
	b = append(b, `,"estimated_wait_seconds":`...)
	b = appendOptInt(b, q.EstimatedWaitSeconds)
	b = append(b, `,"pass":`...)
	if q.Pass == nil {
		b = append(b, "null"...)
	} else {
		b = appendString(b, *q.Pass)
	}
	b = append(b, `,"pass_expires_at":`...)
	if q.PassExpiresAt == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '"')
		b = appendTime(b, q.PassExpiresAt.Time)
		b = append(b, '"')
	}
	return append(b, "}}"...)
}

func appendOptInt(b []byte, n *int64) []byte {
	if n == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, *n, 10)
}
