package batch

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

// settleStore answers SettleBatch from a map of holds, one batch at a
// time, each after gate lets it through; every other method is unused.
type settleStore struct {
	ticketrush.Store
	entered chan struct{} // gets a value as each batch reaches the store
	gate    chan struct{}
	mu      sync.Mutex
	batches [][]ticketrush.SettleRequest
	status  map[int64]string
	err     error
}

func (s *settleStore) SettleBatch(ctx context.Context, reqs []ticketrush.SettleRequest) ([]ticketrush.SettleResult, error) {
	if s.entered != nil {
		s.entered <- struct{}{}
	}
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, append([]ticketrush.SettleRequest(nil), reqs...))
	if s.err != nil {
		return nil, s.err
	}
	out := make([]ticketrush.SettleResult, len(reqs))
	for i, q := range reqs {
		switch st := s.status[q.ID]; {
		case st == ticketrush.StatusPurchased:
			out[i].Err = ticketrush.ErrAlreadyPurchased()
		case st == ticketrush.StatusCancelled && !q.Cancel:
			out[i].Err = ticketrush.ErrCancelled()
		default:
			if q.Cancel {
				s.status[q.ID] = ticketrush.StatusCancelled
			} else {
				s.status[q.ID] = ticketrush.StatusPurchased
			}
			out[i].Reservation = &ticketrush.Reservation{ID: q.ID, UserUID: q.Visitor, Status: s.status[q.ID]}
		}
	}
	return out, nil
}

// TestSettlerBatches: requests that queue behind a running batch go in the
// next one together, in arrival order, each answered with its own result.
func TestSettlerBatches(t *testing.T) {
	s := &settleStore{entered: make(chan struct{}, 10), gate: make(chan struct{}), status: map[int64]string{}}
	st := NewSettler(s, Options{})
	defer st.Close()
	first := make(chan error, 1)
	go func() {
		_, err := st.Purchase(t.Context(), 1, "a")
		first <- err
	}()
	<-s.entered // the first batch waits at the gate
	const n = 50
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			var res *ticketrush.Reservation
			var err error
			if i%2 == 0 {
				res, err = st.Purchase(t.Context(), int64(100+i), "v")
			} else {
				res, err = st.Cancel(t.Context(), int64(100+i), "v")
			}
			if err == nil && res.ID != int64(100+i) {
				err = fmt.Errorf("answered with hold %d", res.ID)
			}
			errs[i] = err
		})
	}
	for st.Queued() < n {
		time.Sleep(time.Millisecond)
	}
	close(s.gate)
	wg.Wait()
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, err := range errs {
		if err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	if len(s.batches) != 2 || len(s.batches[1]) != n {
		t.Fatalf("%d batches, sizes %v; want 2, the second of %d", len(s.batches), sizes(s.batches), n)
	}
}

func sizes(b [][]ticketrush.SettleRequest) []int {
	out := make([]int, len(b))
	for i, x := range b {
		out[i] = len(x)
	}
	return out
}

// TestSettlerFailure: a failed batch answers each request with its error;
// a deadline the store reports without saying how far it got becomes
// outcome_unknown; unavailable stays unavailable.
func TestSettlerFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code string
	}{
		{fmt.Errorf("settle: %w", context.DeadlineExceeded), ticketrush.EOutcomeUnknown},
		{ticketrush.Unavailable(errors.New("down")), ticketrush.EUnavailable},
		{ticketrush.OutcomeUnknown(errors.New("lost")), ticketrush.EOutcomeUnknown},
	} {
		s := &settleStore{status: map[int64]string{}, err: tc.err}
		st := NewSettler(s, Options{})
		_, err := st.Cancel(t.Context(), 7, "v")
		st.Close()
		if got := ticketrush.ErrorCode(err); got != tc.code {
			t.Errorf("%v: code %q, want %q", tc.err, got, tc.code)
		}
	}
}

// TestSettlerGivesUp: a request whose caller gives up while it is still
// queued is never sent to the store.
func TestSettlerGivesUp(t *testing.T) {
	s := &settleStore{entered: make(chan struct{}, 10), gate: make(chan struct{}), status: map[int64]string{}}
	st := NewSettler(s, Options{})
	defer st.Close()
	go st.Purchase(t.Context(), 1, "a")
	<-s.entered // the first batch waits at the gate
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		_, err := st.Purchase(ctx, 2, "b")
		done <- err
	}()
	for st.Queued() != 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if code := ticketrush.ErrorCode(<-done); code != ticketrush.EUnavailable {
		t.Errorf("code %q, want unavailable", code)
	}
	close(s.gate)
	st.Close()
	for _, b := range s.batches {
		for _, q := range b {
			if q.ID == 2 {
				t.Error("an abandoned request reached the store")
			}
		}
	}
}
