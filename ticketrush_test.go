package ticketrush_test

import (
	"errors"
	"fmt"
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

func TestAdmissionsAt(t *testing.T) {
	room := func(perMinute, maxActive int64) *ticketrush.WaitingRoom {
		return &ticketrush.WaitingRoom{AdmitPerMinute: perMinute, MaxActive: maxActive, PassSeconds: 300}
	}
	// A tick of a 600-a-minute room falls every 100 ms from the epoch.
	t0 := time.Date(2026, 11, 27, 16, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *time.Time { t := t0.Add(d); return &t }
	for _, tc := range []struct {
		name            string
		room            *ticketrush.WaitingRoom
		lastMinute, act int64
		last            *time.Time
		now             time.Time
		want            int64
	}{
		{"NoRoom", nil, 0, 0, nil, t0, 0},
		{"Paused", &ticketrush.WaitingRoom{AdmitPerMinute: 600, PassSeconds: 300, Paused: true}, 0, 0, nil, t0, 0},
		{"FirstIsASecondsShare", room(600, 0), 0, 0, nil, t0, 10},
		{"FirstOfASlowRoomIsOne", room(5, 0), 0, 0, nil, t0, 1},
		{"OneSecondOf600", room(600, 0), 10, 0, at(0), t0.Add(time.Second), 10},
		{"TicksCrossed", room(600, 0), 10, 0, at(50 * time.Millisecond), t0.Add(250 * time.Millisecond), 2},
		{"BetweenTicks", room(600, 0), 10, 0, at(110 * time.Millisecond), t0.Add(190 * time.Millisecond), 0},
		{"SlowRoomWaits", room(5, 0), 1, 0, at(0), t0.Add(11 * time.Second), 0},
		{"SlowRoomMoves", room(5, 0), 1, 0, at(0), t0.Add(12 * time.Second), 1},
		{"WindowFull", room(5, 0), 5, 0, at(0), t0.Add(time.Minute), 0},
		{"WindowAlmostFull", room(600, 0), 595, 0, at(0), t0.Add(time.Minute), 5},
		{"ActiveCap", room(600, 3), 0, 1, at(0), t0.Add(time.Minute), 2},
		{"ActiveFull", room(600, 3), 0, 3, at(0), t0.Add(time.Minute), 0},
		{"ChunkCap", room(ticketrush.MaxAdmitPerMinute, 0), 0, 0, at(0), t0.Add(time.Minute), ticketrush.QueueChunk},
		{"LongPauseIsAMinute", room(60, 0), 0, 0, at(0), t0.Add(time.Hour), 60},
		{"ClockBackwards", room(600, 0), 0, 0, at(time.Second), t0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ticketrush.AdmissionsAt(tc.room, tc.lastMinute, tc.act, tc.last, tc.now); got != tc.want {
				t.Errorf("AdmissionsAt = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestAdmissionsPace advances a room the way several nodes do, at steps
// more frequent than its admissions or coarser than them, and checks that
// what it admits follows AdmitPerMinute: no step's share rounded up (which
// ran a 300-a-minute room advanced 30 times a second at 30 a second) and
// none lost (which would run a 600-a-minute room advanced every 250 ms at
// 8 a second).
func TestAdmissionsPace(t *testing.T) {
	for _, tc := range []struct {
		perMinute int64
		step      time.Duration
	}{
		{300, 33 * time.Millisecond},
		{600, 250 * time.Millisecond},
		{600, 83 * time.Millisecond},
		{60, 100 * time.Millisecond},
		{7, 250 * time.Millisecond},
		{100_000, 250 * time.Millisecond},
	} {
		t.Run(fmt.Sprintf("%d/min every %s", tc.perMinute, tc.step), func(t *testing.T) {
			w := &ticketrush.WaitingRoom{AdmitPerMinute: tc.perMinute, PassSeconds: 60}
			start := time.Date(2026, 11, 27, 16, 0, 0, 123_000_000, time.UTC)
			var stamps []time.Time
			var last *time.Time
			const span = 30 * time.Second
			for now := start; now.Before(start.Add(span)); now = now.Add(tc.step) {
				inWindow := int64(0)
				for _, s := range stamps {
					if s.After(now.Add(-time.Minute)) {
						inWindow++
					}
				}
				n := ticketrush.AdmissionsAt(w, inWindow, 0, last, now)
				for range n {
					stamps = append(stamps, now)
				}
				if n > 0 {
					l := now
					last = &l
				}
			}
			// A second's share at once, then the rate: within a step's
			// share of it either way.
			want := float64(tc.perMinute)*(span-tc.step).Seconds()/60 + float64(min((tc.perMinute+59)/60, ticketrush.QueueChunk))
			slack := float64(tc.perMinute)*tc.step.Seconds()/60 + 1
			if got := float64(len(stamps)); got > want+slack || got < want-slack {
				t.Errorf("%d admitted in %s, want %.0f ± %.0f", len(stamps), span, want, slack)
			}
		})
	}
}
