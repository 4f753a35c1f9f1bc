package sqlite

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ticketrush/ticketrush"
)

// TestReserveReleasesOnlyWhatItNeeds checks that a reserve short of stock
// releases the event's oldest expired holds only until it has enough, not
// every expired hold of the event: at the five-minute mark of an opening
// that could be thousands of rows inside the hot transaction. The sweep
// releases the rest.
func TestReserveReleasesOnlyWhatItNeeds(t *testing.T) {
	path, c := newDB(t)
	s := open(t, path, c)
	const holds = 2*releaseChunk + 50
	ev := createEvent(t, s, concert(holds))
	for range holds / 10 {
		reqs := make([]ticketrush.ReserveRequest, 10)
		for i := range reqs {
			reqs[i] = ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()}
		}
		if _, err := s.ReserveBatch(t.Context(), ev.ID, reqs); err != nil {
			t.Fatal(err)
		}
		c.Advance(time.Millisecond)
	}
	c.Advance(300 * time.Second)

	expired := int64(0)
	want := func(what string, n int64) {
		t.Helper()
		expired += n
		st := checkInvariant(t, s, ev.ID)
		if st.Expired != expired || st.Available != 0 || st.Held != holds {
			t.Errorf("after %s: %+v, want %d expired, none available, %d held", what, *st, expired, holds)
		}
	}

	// Reserve: three tickets short, three holds released.
	if _, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 3, VisitorToken: uuid.NewString()}); err != nil {
		t.Fatal(err)
	}
	want("a reserve of 3", 3)

	// A batch asking for more than one chunk of holds releases over
	// several chunks, exactly what it asks for.
	reqs := make([]ticketrush.ReserveRequest, releaseChunk/10+5)
	for i := range reqs {
		reqs[i] = ticketrush.ReserveRequest{EventID: ev.ID, Amount: 10, VisitorToken: uuid.NewString()}
	}
	results, err := s.ReserveBatch(t.Context(), ev.ID, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range results {
		if r.Err != nil {
			t.Fatalf("result %d: %v", i, r.Err)
		}
	}
	want("a batch", int64(len(reqs))*10)

	// The oldest went first.
	var newestReleased, oldestLeft string
	err = s.rdb.QueryRow(`SELECT
		(SELECT MAX(expires_at) FROM reservations WHERE status = 'expired'),
		(SELECT MIN(expires_at) FROM reservations WHERE status = 'reserved')`).Scan(&newestReleased, &oldestLeft)
	if err != nil {
		t.Fatal(err)
	}
	if newestReleased > oldestLeft {
		t.Errorf("released a hold ending %s while one ending %s is left", newestReleased, oldestLeft)
	}
}
