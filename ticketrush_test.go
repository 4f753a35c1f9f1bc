package ticketrush_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

func TestParseVisitorToken(t *testing.T) {
	for _, tc := range []struct {
		in, want, code string
	}{
		{"c9439d95-2123-4d0b-8967-50903fc0b9a8", "c9439d95-2123-4d0b-8967-50903fc0b9a8", ""},
		{"C9439D95-2123-4D0B-8967-50903FC0B9A8", "c9439d95-2123-4d0b-8967-50903fc0b9a8", ""},
		{"", "", ticketrush.EVisitorTokenRequired},
		{"c9439d9521234d0b896750903fc0b9a8", "", ticketrush.EInvalidVisitorToken},
		{"c9439d95-2123-4d0b-8967-50903fc0b9a8 ", "", ticketrush.EInvalidVisitorToken},
		{"g9439d95-2123-4d0b-8967-50903fc0b9a8", "", ticketrush.EInvalidVisitorToken},
		{"'; DROP TABLE reservations; --", "", ticketrush.EInvalidVisitorToken},
	} {
		got, err := ticketrush.ParseVisitorToken(tc.in)
		if got != tc.want || ticketrush.ErrorCode(err) != tc.code {
			t.Errorf("ParseVisitorToken(%q) = %q, %v; want %q, %q", tc.in, got, err, tc.want, tc.code)
		}
	}
}

func TestNewEventValidate(t *testing.T) {
	ok := ticketrush.NewEvent{Name: "Örnek Etkinlik", TicketQuantity: 2000, HoldSeconds: 300}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid event: %v", err)
	}
	bad := ticketrush.NewEvent{Name: strings.Repeat("x", 201), TicketQuantity: 0, HoldSeconds: 0, MaxPerVisitor: -1}
	var e *ticketrush.Error
	if err := bad.Validate(); !errors.As(err, &e) || e.Code != ticketrush.EValidation {
		t.Fatalf("invalid event: %v", err)
	}
	for _, f := range []string{"name", "ticket_quantity", "hold_seconds", "max_per_visitor"} {
		if e.Fields[f] == "" {
			t.Errorf("no message for field %s: %v", f, e.Fields)
		}
	}
}

func TestDecide(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)
	r := ticketrush.ReserveRequest{EventID: 1, Amount: 2}
	for _, tc := range []struct {
		name            string
		event           ticketrush.Event
		available, held int64
		want            string
	}{
		{"OK", ticketrush.Event{}, 2, 0, ""},
		{"ErrNotEnoughTickets", ticketrush.Event{}, 1, 0, ticketrush.ENotEnoughTickets},
		{"ErrSaleNotStarted", ticketrush.Event{SaleStartsAt: &later}, 10, 0, ticketrush.ESaleNotStarted},
		{"SaleStartsNow", ticketrush.Event{SaleStartsAt: &now}, 10, 0, ""},
		{"ErrVisitorLimit", ticketrush.Event{MaxPerVisitor: 3}, 10, 2, ticketrush.EVisitorLimit},
		{"AtVisitorLimit", ticketrush.Event{MaxPerVisitor: 4}, 10, 2, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ticketrush.Decide(&tc.event, now, r, tc.available, tc.held)
			if got := ticketrush.ErrorCode(err); got != tc.want {
				t.Fatalf("Decide = %v, want code %q", err, tc.want)
			}
		})
	}
}

func TestErrorCodeHidesInternals(t *testing.T) {
	err := errors.New("pq: relation \"events\" does not exist")
	if ticketrush.ErrorCode(err) != ticketrush.EInternal || ticketrush.ErrorMessage(err) != "Internal error." {
		t.Fatalf("plain error leaked: %q %q", ticketrush.ErrorCode(err), ticketrush.ErrorMessage(err))
	}
	u := ticketrush.Unavailable(err)
	if ticketrush.ErrorCode(u) != ticketrush.EUnavailable || strings.Contains(ticketrush.ErrorMessage(u), "relation") {
		t.Fatalf("unavailable error: %q %q", ticketrush.ErrorCode(u), ticketrush.ErrorMessage(u))
	}
}

func TestAdmissions(t *testing.T) {
	room := func(perMinute, maxActive int64) *ticketrush.WaitingRoom {
		return &ticketrush.WaitingRoom{AdmitPerMinute: perMinute, MaxActive: maxActive, PassSeconds: 300}
	}
	for _, tc := range []struct {
		name            string
		room            *ticketrush.WaitingRoom
		lastMinute, act int64
		since           time.Duration
		want            int64
	}{
		{"NoRoom", nil, 0, 0, time.Second, 0},
		{"Paused", &ticketrush.WaitingRoom{AdmitPerMinute: 600, PassSeconds: 300, Paused: true}, 0, 0, time.Second, 0},
		{"OneSecondOf600", room(600, 0), 0, 0, time.Second, 10},
		{"RoundsUp", room(600, 0), 0, 0, 1500 * time.Millisecond, 15},
		{"AtLeastOne", room(5, 0), 0, 0, 0, 1},
		{"WindowFull", room(5, 0), 5, 0, time.Minute, 0},
		{"WindowAlmostFull", room(600, 0), 595, 0, time.Minute, 5},
		{"ActiveCap", room(600, 3), 0, 1, time.Minute, 2},
		{"ActiveFull", room(600, 3), 0, 3, time.Minute, 0},
		{"ChunkCap", room(ticketrush.MaxAdmitPerMinute, 0), 0, 0, time.Minute, ticketrush.QueueChunk},
		{"LongPauseIsAMinute", room(60, 0), 0, 0, time.Hour, 60},
		{"ClockBackwards", room(600, 0), 0, 0, -time.Second, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ticketrush.Admissions(tc.room, tc.lastMinute, tc.act, tc.since); got != tc.want {
				t.Errorf("Admissions = %d, want %d", got, tc.want)
			}
		})
	}
}
