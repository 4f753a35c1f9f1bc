package storetest

import (
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ticketrush/ticketrush"
)

// visitor returns a new visitor token in the canonical form the HTTP layer
// passes to a store.
func visitor() string { return uuid.NewString() }

// concert is an event with no limits and the original's hold.
func concert(quantity int64) ticketrush.NewEvent {
	return ticketrush.NewEvent{Name: "Örnek Etkinlik", TicketQuantity: quantity, HoldSeconds: 300}
}

// createEvent creates ne or stops the test.
func createEvent(t *testing.T, s ticketrush.Store, ne ticketrush.NewEvent) *ticketrush.Event {
	t.Helper()
	ev, err := s.CreateEvent(t.Context(), ne)
	if err != nil {
		t.Fatalf("CreateEvent(%+v): %v", ne, err)
	}
	if ev == nil || ev.ID < 1 {
		t.Fatalf("CreateEvent(%+v) = %+v, want an event with a positive id", ne, ev)
	}
	return ev
}

// req is a reserve request without an idempotency key.
func req(eventID, amount int64, visitor string) ticketrush.ReserveRequest {
	return ticketrush.ReserveRequest{EventID: eventID, Amount: amount, VisitorToken: visitor}
}

// keyed is a reserve request with an idempotency key.
func keyed(eventID, amount int64, visitor, key string) ticketrush.ReserveRequest {
	return ticketrush.ReserveRequest{EventID: eventID, Amount: amount, VisitorToken: visitor, IdempotencyKey: key}
}

// reserve makes a reservation that must succeed and checks that it is what
// was asked for.
func reserve(t *testing.T, r ticketrush.Reserver, rq ticketrush.ReserveRequest) *ticketrush.Reservation {
	t.Helper()
	res, err := r.Reserve(t.Context(), rq)
	if err != nil {
		t.Fatalf("Reserve(%+v): %v", rq, err)
	}
	if !checkGranted(t, rq, res) {
		t.FailNow()
	}
	return res
}

// checkGranted checks a reservation returned for rq. It only reports, so
// that goroutines may call it.
func checkGranted(t *testing.T, rq ticketrush.ReserveRequest, res *ticketrush.Reservation) bool {
	t.Helper()
	switch {
	case res == nil:
		t.Errorf("Reserve(%+v) returned no reservation and no error", rq)
		return false
	case res.ID < 1:
		t.Errorf("Reserve(%+v): id %d, want positive", rq, res.ID)
	case res.EventID != rq.EventID || res.Amount != rq.Amount || res.UserUID != rq.VisitorToken:
		t.Errorf("Reserve(%+v) = event %d amount %d user %q, want what was asked",
			rq, res.EventID, res.Amount, res.UserUID)
	case res.IdempotencyKey != rq.IdempotencyKey:
		t.Errorf("Reserve(%+v): idempotency key %q, want %q", rq, res.IdempotencyKey, rq.IdempotencyKey)
	}
	checkTimes(t, "reservation", res.ExpiresAt, res.CreatedAt, res.UpdatedAt)
	return true
}

// reserveErr makes a reservation that must fail with code.
func reserveErr(t *testing.T, r ticketrush.Reserver, rq ticketrush.ReserveRequest, code string) {
	t.Helper()
	res, err := r.Reserve(t.Context(), rq)
	if ticketrush.ErrorCode(err) != code {
		t.Errorf("Reserve(%+v) = %+v, %v; want error %s", rq, res, err, code)
		return
	}
	if res != nil {
		t.Errorf("Reserve(%+v) returned %+v along with error %v", rq, res, err)
	}
}

// wantCode checks that err is a domain error with code.
func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := ticketrush.ErrorCode(err); got != code {
		t.Errorf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
}

// ok stops the test on an unexpected error.
func ok(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// checkTimes checks that every time a store returns is UTC with microsecond
// precision, as the wire format needs.
func checkTimes(t *testing.T, what string, ts ...time.Time) {
	t.Helper()
	for _, x := range ts {
		if x.Location() != time.UTC {
			t.Errorf("%s: time %v is in %v, want UTC", what, x, x.Location())
		}
		if !x.Equal(x.Truncate(time.Microsecond)) {
			t.Errorf("%s: time %v has sub-microsecond digits", what, x)
		}
	}
}

// sameEvent checks that got equals want field by field.
func sameEvent(t *testing.T, what string, got, want *ticketrush.Event) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: nil event", what)
	}
	if got.ID != want.ID || got.Name != want.Name || got.TicketQuantity != want.TicketQuantity ||
		got.Capacity != want.Capacity || got.HoldSeconds != want.HoldSeconds ||
		got.MaxPerVisitor != want.MaxPerVisitor || !sameTimePtr(got.SaleStartsAt, want.SaleStartsAt) ||
		got.MaxPerOrder != want.MaxPerOrder || got.Hidden != want.Hidden || got.SaleClosed != want.SaleClosed ||
		!sameRoom(got.WaitingRoom, want.WaitingRoom) ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("%s:\n got %s\nwant %s", what, fmtEvent(got), fmtEvent(want))
	}
	checkTimes(t, what, got.CreatedAt, got.UpdatedAt)
	if got.SaleStartsAt != nil {
		checkTimes(t, what, *got.SaleStartsAt)
	}
	if got.WaitingRoom != nil && got.WaitingRoom.PrequeueOpensAt != nil {
		checkTimes(t, what, *got.WaitingRoom.PrequeueOpensAt)
	}
}

func sameRoom(a, b *ticketrush.WaitingRoom) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.AdmitPerMinute == b.AdmitPerMinute && a.MaxActive == b.MaxActive &&
		a.PassSeconds == b.PassSeconds && sameTimePtr(a.PrequeueOpensAt, b.PrequeueOpensAt) &&
		a.ChallengeBits == b.ChallengeBits && a.Paused == b.Paused
}

func fmtRoom(w *ticketrush.WaitingRoom) string {
	if w == nil {
		return "nil"
	}
	pre := "nil"
	if w.PrequeueOpensAt != nil {
		pre = w.PrequeueOpensAt.Format(time.RFC3339Nano)
	}
	return fmt.Sprintf("{admit_per_minute:%d max_active:%d pass_seconds:%d prequeue_opens_at:%s challenge_bits:%d paused:%t}",
		w.AdmitPerMinute, w.MaxActive, w.PassSeconds, pre, w.ChallengeBits, w.Paused)
}

func sameTimePtr(a, b *time.Time) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Equal(*b)
}

func fmtEvent(e *ticketrush.Event) string {
	sale := "nil"
	if e.SaleStartsAt != nil {
		sale = e.SaleStartsAt.Format(time.RFC3339Nano)
	}
	return "{id:" + itoa(e.ID) + " name:" + e.Name + " ticket_quantity:" + itoa(e.TicketQuantity) +
		" capacity:" + itoa(e.Capacity) + " hold_seconds:" + itoa(e.HoldSeconds) +
		" max_per_visitor:" + itoa(e.MaxPerVisitor) + " sale_starts_at:" + sale +
		" max_per_order:" + itoa(e.MaxPerOrder) + " hidden:" + strconv.FormatBool(e.Hidden) +
		" sale_closed:" + strconv.FormatBool(e.SaleClosed) + " waiting_room:" + fmtRoom(e.WaitingRoom) +
		" created_at:" + e.CreatedAt.Format(time.RFC3339Nano) +
		" updated_at:" + e.UpdatedAt.Format(time.RFC3339Nano) + "}"
}

// sameReservation checks that got equals want field by field.
func sameReservation(t *testing.T, what string, got, want *ticketrush.Reservation) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: nil reservation", what)
	}
	if got.ID != want.ID || got.EventID != want.EventID || got.UserUID != want.UserUID ||
		got.Status != want.Status || got.Amount != want.Amount || got.IdempotencyKey != want.IdempotencyKey ||
		!got.ExpiresAt.Equal(want.ExpiresAt) || !got.CreatedAt.Equal(want.CreatedAt) ||
		!got.UpdatedAt.Equal(want.UpdatedAt) {
		t.Errorf("%s:\n got %s\nwant %s", what, fmtReservation(got), fmtReservation(want))
	}
	checkTimes(t, what, got.ExpiresAt, got.CreatedAt, got.UpdatedAt)
}

func fmtReservation(r *ticketrush.Reservation) string {
	return "{id:" + itoa(r.ID) + " event_id:" + itoa(r.EventID) + " user_uid:" + r.UserUID +
		" status:" + r.Status + " amount:" + itoa(r.Amount) + " key:" + r.IdempotencyKey +
		" expires_at:" + r.ExpiresAt.Format(time.RFC3339Nano) +
		" created_at:" + r.CreatedAt.Format(time.RFC3339Nano) +
		" updated_at:" + r.UpdatedAt.Format(time.RFC3339Nano) + "}"
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// readBack reads a reservation as its owner.
func readBack(t *testing.T, s ticketrush.Store, r *ticketrush.Reservation) *ticketrush.Reservation {
	t.Helper()
	got, err := s.Reservation(t.Context(), r.ID, r.UserUID)
	if err != nil {
		t.Fatalf("Reservation(%d): %v", r.ID, err)
	}
	return got
}

// wantStatus checks the stored status of a reservation.
func wantStatus(t *testing.T, s ticketrush.Store, r *ticketrush.Reservation, status string) {
	t.Helper()
	if got := readBack(t, s, r); got.Status != status {
		t.Errorf("reservation %d: status %q, want %q", r.ID, got.Status, status)
	}
}

// stats returns an event's stats or stops the test.
func stats(t *testing.T, s ticketrush.Store, eventID int64) *ticketrush.Stats {
	t.Helper()
	st, err := s.Stats(t.Context(), eventID)
	if err != nil {
		t.Fatalf("Stats(%d): %v", eventID, err)
	}
	if st.EventID != eventID {
		t.Errorf("Stats(%d).EventID = %d", eventID, st.EventID)
	}
	return st
}

// wantStats checks every count of an event's stats, and the invariant.
func wantStats(t *testing.T, s ticketrush.Store, want ticketrush.Stats) {
	t.Helper()
	got := stats(t, s, want.EventID)
	if *got != want {
		t.Errorf("Stats(%d) = %+v, want %+v", want.EventID, *got, want)
	}
	checkInvariant(t, s, want.EventID)
}

// wantAvailable checks an event's stock, through both Event and Stats.
func wantAvailable(t *testing.T, s ticketrush.Store, eventID, n int64) {
	t.Helper()
	ev, err := s.Event(t.Context(), eventID)
	if err != nil {
		t.Fatalf("Event(%d): %v", eventID, err)
	}
	if ev.TicketQuantity != n {
		t.Errorf("event %d: ticket_quantity %d, want %d", eventID, ev.TicketQuantity, n)
	}
	if st := stats(t, s, eventID); st.Available != n {
		t.Errorf("event %d: stats available %d, want %d", eventID, st.Available, n)
	}
}

// checkInvariant checks capacity == available + held + purchased for an
// event, and that Stats and Event agree on capacity and stock. It returns
// the stats.
func checkInvariant(t *testing.T, s ticketrush.Store, eventID int64) *ticketrush.Stats {
	t.Helper()
	st := stats(t, s, eventID)
	if st.Capacity != st.Available+st.Held+st.Purchased {
		t.Errorf("event %d: invariant broken: capacity %d != available %d + held %d + purchased %d",
			eventID, st.Capacity, st.Available, st.Held, st.Purchased)
	}
	if st.Available < 0 || st.Held < 0 || st.Purchased < 0 || st.Expired < 0 || st.Cancelled < 0 {
		t.Errorf("event %d: negative count in %+v", eventID, *st)
	}
	ev, err := s.Event(t.Context(), eventID)
	if err != nil {
		t.Fatalf("Event(%d): %v", eventID, err)
	}
	if ev.Capacity != st.Capacity || ev.TicketQuantity != st.Available {
		t.Errorf("event %d: event says capacity %d ticket_quantity %d, stats say capacity %d available %d",
			eventID, ev.Capacity, ev.TicketQuantity, st.Capacity, st.Available)
	}
	return st
}

// ledger is every reservation a case knows was acknowledged, so the stats
// can be checked against the sum of the reservations themselves.
type ledger struct {
	mu sync.Mutex
	rs map[int64]*ticketrush.Reservation
}

func newLedger() *ledger { return &ledger{rs: make(map[int64]*ticketrush.Reservation)} }

// add records an acknowledged reservation; a repeat (same id) must agree.
func (l *ledger) add(t *testing.T, r *ticketrush.Reservation) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if old, ok := l.rs[r.ID]; ok {
		if old.EventID != r.EventID || old.UserUID != r.UserUID || old.Amount != r.Amount {
			t.Errorf("reservation id %d returned twice for different holds: %s and %s",
				r.ID, fmtReservation(old), fmtReservation(r))
		}
		return
	}
	l.rs[r.ID] = r
}

// all returns the recorded reservations.
func (l *ledger) all() []*ticketrush.Reservation {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*ticketrush.Reservation, 0, len(l.rs))
	for _, r := range l.rs {
		out = append(out, r)
	}
	return out
}

// sum returns the tickets acknowledged on an event.
func (l *ledger) sum(eventID int64) int64 {
	var n int64
	for _, r := range l.all() {
		if r.EventID == eventID {
			n += r.Amount
		}
	}
	return n
}

// checkLedger checks the invariant, and that the event's stats equal the
// sums of its reservations' stored statuses. The ledger must hold every
// reservation ever made on the event.
func checkLedger(t *testing.T, s ticketrush.Store, eventID int64, l *ledger) *ticketrush.Stats {
	t.Helper()
	st := checkInvariant(t, s, eventID)
	sum := map[string]int64{}
	for _, r := range l.all() {
		if r.EventID != eventID {
			continue
		}
		got := readBack(t, s, r)
		if got.Amount != r.Amount || got.UserUID != r.UserUID || got.EventID != r.EventID {
			t.Errorf("reservation %d reads back as %s, was acknowledged as %s", r.ID, fmtReservation(got), fmtReservation(r))
		}
		sum[got.Status] += got.Amount
	}
	want := ticketrush.Stats{
		EventID:   eventID,
		Capacity:  st.Capacity,
		Available: st.Capacity - sum[ticketrush.StatusReserved] - sum[ticketrush.StatusPurchased],
		Held:      sum[ticketrush.StatusReserved],
		Purchased: sum[ticketrush.StatusPurchased],
		Expired:   sum[ticketrush.StatusExpired],
		Cancelled: sum[ticketrush.StatusCancelled],
	}
	if *st != want {
		t.Errorf("event %d: stats %+v, but its reservations add up to %+v", eventID, *st, want)
	}
	return st
}
