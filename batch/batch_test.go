package batch_test

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/batch"
)

// memStore decides batches in memory with a fixed commit latency: enough to
// test the batcher's queueing on its own. The backends' real ReserveBatch is
// proven by the conformance suite.
type memStore struct {
	ticketrush.Store // only ReserveBatches is used

	commit time.Duration
	fail   error

	mu      sync.Mutex
	stock   int64
	nextID  int64
	batches []int         // requests per transaction
	events  []int         // events per transaction
	ids     [][]int64     // the events of each transaction
	gate    chan struct{} // when set, each batch waits for a token
	entered atomic.Int32  // batches that have started
}

// ReserveBatches decides every event's requests against one shared stock,
// as one transaction.
func (s *memStore) ReserveBatches(ctx context.Context, batches []ticketrush.EventBatch) ([][]ticketrush.ReserveResult, error) {
	if err := ticketrush.CheckBatches(batches); err != nil {
		return nil, err
	}
	n := 0
	for _, b := range batches {
		n += len(b.Reqs)
	}
	s.mu.Lock()
	s.batches = append(s.batches, n)
	s.events = append(s.events, len(batches))
	var ids []int64
	for _, b := range batches {
		ids = append(ids, b.EventID)
	}
	s.ids = append(s.ids, ids)
	s.mu.Unlock()
	s.entered.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	if s.commit > 0 {
		time.Sleep(s.commit)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	all := make([][]ticketrush.ReserveResult, len(batches))
	for k, b := range batches {
		out := make([]ticketrush.ReserveResult, len(b.Reqs))
		for i, r := range b.Reqs {
			if r.EventID != b.EventID {
				out[i].Err = errors.New("request in another event's batch")
				continue
			}
			if r.Amount > s.stock {
				out[i].Err = ticketrush.Errorf(ticketrush.ENotEnoughTickets, "Not enough tickets available.")
				continue
			}
			s.stock -= r.Amount
			s.nextID++
			out[i].Reservation = &ticketrush.Reservation{ID: s.nextID, EventID: b.EventID, Amount: r.Amount, Status: ticketrush.StatusReserved}
		}
		all[k] = out
	}
	return all, nil
}

func req(amount int64) ticketrush.ReserveRequest {
	return ticketrush.ReserveRequest{EventID: 1, Amount: amount, VisitorToken: "9f1c7a52-3f2e-4a8b-9c1d-2b3e4f5a6b7c"}
}

func TestBatcher(t *testing.T) {
	t.Run("OK", func(t *testing.T) {
		s := &memStore{stock: 10}
		b := batch.New(s, batch.Options{})
		defer b.Close()
		r, err := b.Reserve(t.Context(), req(3))
		if err != nil || r.Amount != 3 {
			t.Fatalf("Reserve = %+v, %v", r, err)
		}
	})

	t.Run("GroupsWaitersBehindRunningBatch", func(t *testing.T) {
		s, open := newGated(1000)
		b := batch.New(s, batch.Options{})
		t.Cleanup(func() { open(); b.Close() })
		const n = 50
		var wg sync.WaitGroup
		var ok atomic.Int64
		for range n {
			wg.Go(func() {
				if _, err := b.Reserve(context.Background(), req(1)); err == nil {
					ok.Add(1)
				}
			})
		}
		// The first batch is held at the gate; let the others queue behind it.
		waitFor(t, func() bool { return accounted(s, b) == n })
		open()
		wg.Wait()
		if ok.Load() != n {
			t.Fatalf("acknowledged %d, want %d", ok.Load(), n)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.batches) > 2 {
			t.Fatalf("%d batches %v for %d concurrent reserves, want them grouped", len(s.batches), s.batches, n)
		}
	})

	t.Run("MaxBatch", func(t *testing.T) {
		s, open := newGated(1000)
		b := batch.New(s, batch.Options{MaxBatch: 4})
		t.Cleanup(func() { open(); b.Close() })
		var wg sync.WaitGroup
		for range 9 {
			wg.Go(func() { b.Reserve(context.Background(), req(1)) })
		}
		waitFor(t, func() bool { return accounted(s, b) == 9 })
		open()
		wg.Wait()
		for _, n := range s.batches {
			if n > 4 {
				t.Fatalf("batch of %d exceeds MaxBatch 4: %v", n, s.batches)
			}
		}
	})

	t.Run("EventsShareTransactions", func(t *testing.T) {
		// Reserves for 50 events queued behind one transaction all go in
		// the next one: spreading the load over events does not shrink the
		// batches.
		s, open := newGated(1000)
		b := batch.New(s, batch.Options{})
		t.Cleanup(func() { open(); b.Close() })
		var wg sync.WaitGroup
		wg.Go(func() { b.Reserve(context.Background(), req(1)) })
		waitFor(t, func() bool { return inFlight(s) })
		const events = 50
		for ev := range events {
			wg.Go(func() {
				r := req(1)
				r.EventID = int64(100 + ev)
				if res, err := b.Reserve(context.Background(), r); err != nil || res.EventID != r.EventID {
					t.Errorf("Reserve(event %d) = %+v, %v", r.EventID, res, err)
				}
			})
		}
		waitFor(t, func() bool { return queued(b) == events })
		open()
		wg.Wait()
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.events) != 2 || s.events[1] != events || s.batches[1] != events {
			t.Fatalf("transactions of %v requests over %v events; want the %d queued events in one", s.batches, s.events, events)
		}
	})

	t.Run("MaxBatchOverEventsIsFair", func(t *testing.T) {
		// MaxBatch caps a transaction over all its events; an event with a
		// backlog goes to the back of the line, so another event's
		// reserve waits at most one more transaction.
		s, open := newGated(1000)
		b := batch.New(s, batch.Options{MaxBatch: 4})
		t.Cleanup(func() { open(); b.Close() })
		var wg sync.WaitGroup
		wg.Go(func() { b.Reserve(context.Background(), req(1)) })
		waitFor(t, func() bool { return inFlight(s) })
		for range 12 {
			wg.Go(func() { b.Reserve(context.Background(), req(1)) })
		}
		waitFor(t, func() bool { return queued(b) == 12 })
		wg.Go(func() {
			r := req(1)
			r.EventID = 2
			b.Reserve(context.Background(), r)
		})
		waitFor(t, func() bool { return queued(b) == 13 })
		open()
		wg.Wait()
		for _, n := range s.batches {
			if n > 4 {
				t.Fatalf("transaction of %d exceeds MaxBatch 4: %v", n, s.batches)
			}
		}
		// Transaction 1 was held; 2 took 4 of event 1's backlog; 3 must
		// take event 2's reserve.
		if len(s.ids) < 3 || !slices.Contains(s.ids[2], 2) {
			t.Fatalf("transactions over events %v; want event 2 in the 3rd", s.ids)
		}
	})

	t.Run("ErrOverloaded", func(t *testing.T) {
		s, open := newGated(1000)
		b := batch.New(s, batch.Options{MaxQueue: 2})
		t.Cleanup(func() { open(); b.Close() })
		var wg sync.WaitGroup
		wg.Go(func() { b.Reserve(context.Background(), req(1)) })
		waitFor(t, func() bool { return inFlight(s) })
		for range 2 { // queued behind the batch held at the gate
			wg.Go(func() { b.Reserve(context.Background(), req(1)) })
		}
		waitFor(t, func() bool { return queued(b) == 2 })
		_, err := b.Reserve(t.Context(), req(1))
		if ticketrush.ErrorCode(err) != ticketrush.EOverloaded {
			t.Fatalf("err = %v, want %s", err, ticketrush.EOverloaded)
		}
		open()
		wg.Wait()
	})

	t.Run("TransactionFailureReachesEveryWaiter", func(t *testing.T) {
		s := &memStore{stock: 1000, fail: ticketrush.Unavailable(errors.New("connection refused"))}
		b := batch.New(s, batch.Options{})
		defer b.Close()
		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if _, err := b.Reserve(context.Background(), req(1)); ticketrush.ErrorCode(err) != ticketrush.EUnavailable {
					t.Errorf("err = %v, want %s", err, ticketrush.EUnavailable)
				}
			})
		}
		wg.Wait()
	})

	t.Run("AbandonedWaiterIsDropped", func(t *testing.T) {
		s, open := newGated(1000)
		b := batch.New(s, batch.Options{})
		t.Cleanup(func() { open(); b.Close() })
		first := make(chan error)
		go func() { _, err := b.Reserve(context.Background(), req(1)); first <- err }()
		waitFor(t, func() bool { return inFlight(s) })
		// This one queues behind the gated batch, then its client goes away.
		ctx, cancel := context.WithCancel(context.Background())
		gone := make(chan error)
		go func() { _, err := b.Reserve(ctx, req(5)); gone <- err }()
		waitFor(t, func() bool { return queued(b) == 1 })
		cancel()
		if err := <-gone; ticketrush.ErrorCode(err) != ticketrush.EUnavailable {
			t.Fatalf("abandoned err = %v", err)
		}
		open()
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		b.Close()
		if s.stock != 999 {
			t.Fatalf("stock = %d, want 999: the abandoned reserve was applied", s.stock)
		}
	})

	t.Run("Metrics", func(t *testing.T) {
		reg := prometheus.NewRegistry()
		s := &memStore{stock: 10}
		b := batch.New(s, batch.Options{Metrics: batch.NewMetrics(reg)})
		defer b.Close()
		if _, err := b.Reserve(t.Context(), req(1)); err != nil {
			t.Fatal(err)
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, mf := range mfs {
			names[mf.GetName()] = true
		}
		for _, n := range []string{"ticketrush_batch_size", "ticketrush_batch_wait_seconds", "ticketrush_batch_queue_depth"} {
			if !names[n] {
				t.Errorf("metric %s missing", n)
			}
		}
	})
}

func queued(b *batch.Batcher) int { return b.Queued() }

// accounted is how many requests have reached a batch or a queue.
func accounted(s *memStore, b *batch.Batcher) int {
	s.mu.Lock()
	n := 0
	for _, k := range s.batches {
		n += k
	}
	s.mu.Unlock()
	return n + b.Queued()
}

// newGated returns a store whose batches block until open is called; each
// test opens it again in its cleanup, so a failing test never leaves the
// batcher stuck.
func newGated(stock int64) (s *memStore, open func()) {
	s = &memStore{stock: stock, gate: make(chan struct{})}
	var once sync.Once
	open = func() { once.Do(func() { close(s.gate) }) }
	return s, open
}

func inFlight(s *memStore) bool { return s.entered.Load() > 0 }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 5s")
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkBatcher measures reserves/s through the batcher alone against a
// store whose every transaction costs a fixed 1 ms commit: with group commit
// the commit is paid once per batch, not once per reserve.
func BenchmarkBatcher(b *testing.B) {
	for _, par := range []int{1, 64, 1024} {
		b.Run("parallelism="+strconv.Itoa(par), func(b *testing.B) {
			s := &memStore{stock: 1 << 60, commit: time.Millisecond}
			bt := batch.New(s, batch.Options{})
			defer bt.Close()
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := bt.Reserve(context.Background(), req(1)); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reserves/s")
		})
	}
}

// BenchmarkOneTransactionPerReserve is the same store driven without the
// batcher, one transaction per reserve under one lock, as the original
// strategy does on one hot row.
func BenchmarkOneTransactionPerReserve(b *testing.B) {
	s := &memStore{stock: 1 << 60, commit: time.Millisecond}
	var rowLock sync.Mutex
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rowLock.Lock()
			_, err := s.ReserveBatches(context.Background(), []ticketrush.EventBatch{{EventID: 1, Reqs: []ticketrush.ReserveRequest{req(1)}}})
			rowLock.Unlock()
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reserves/s")
}

// hungStore never answers: each batch waits for its context to end, as on
// a database that stopped responding.
type hungStore struct{ ticketrush.Store }

func (hungStore) ReserveBatches(ctx context.Context, _ []ticketrush.EventBatch) ([][]ticketrush.ReserveResult, error) {
	<-ctx.Done()
	return nil, ticketrush.Unavailable(ctx.Err())
}

// TestAnswersByDeadline: against a hung database every reserve is answered
// by its own deadline, also one that queued behind a stalled batch and would
// otherwise wait for that batch and then for a whole batch of its own.
func TestAnswersByDeadline(t *testing.T) {
	const timeout = 400 * time.Millisecond
	b := batch.New(hungStore{}, batch.Options{Timeout: timeout})
	defer b.Close()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(i) * timeout / 8)
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			start := time.Now()
			_, err := b.Reserve(ctx, req(1))
			if took := time.Since(start); took > timeout+timeout/2 {
				t.Errorf("reserve %d answered after %s; its deadline was %s", i, took.Round(time.Millisecond), timeout)
			}
			if code := ticketrush.ErrorCode(err); code != ticketrush.EUnavailable {
				t.Errorf("reserve %d: %v, want %s", i, err, ticketrush.EUnavailable)
			}
		}()
	}
	wg.Wait()
}

// bareStore fails each batch with its context's bare error once the
// context ends, as a store would that does not classify its errors: the
// requests were handed to the database and may have been applied.
type bareStore struct{ ticketrush.Store }

func (bareStore) ReserveBatches(ctx context.Context, _ []ticketrush.EventBatch) ([][]ticketrush.ReserveResult, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestInDoubt: a reserve whose batch was handed to the store when its
// deadline fired is answered outcome_unknown (it may have been applied);
// one that never left the queue is answered unavailable and never reaches
// the store.
func TestInDoubt(t *testing.T) {
	t.Run("SentBatchDeadline", func(t *testing.T) {
		b := batch.New(bareStore{}, batch.Options{Timeout: 200 * time.Millisecond})
		defer b.Close()
		_, err := b.Reserve(t.Context(), req(1))
		if code := ticketrush.ErrorCode(err); code != ticketrush.EOutcomeUnknown {
			t.Fatalf("Reserve = %v (code %s), want %s", err, code, ticketrush.EOutcomeUnknown)
		}
	})
	t.Run("StoreSaysUnknown", func(t *testing.T) {
		s := &memStore{stock: 10, fail: ticketrush.OutcomeUnknown(errors.New("connection reset after COMMIT"))}
		b := batch.New(s, batch.Options{})
		defer b.Close()
		_, err := b.Reserve(t.Context(), req(1))
		if code := ticketrush.ErrorCode(err); code != ticketrush.EOutcomeUnknown {
			t.Fatalf("Reserve = %v, want %s", err, ticketrush.EOutcomeUnknown)
		}
	})
	t.Run("NeverSent", func(t *testing.T) {
		s, open := newGated(10)
		b := batch.New(s, batch.Options{})
		defer b.Close()
		first := make(chan error, 1)
		go func() {
			_, err := b.Reserve(context.Background(), req(1))
			first <- err
		}()
		waitFor(t, func() bool { return inFlight(s) })
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		_, err := b.Reserve(ctx, req(1))
		if code := ticketrush.ErrorCode(err); code != ticketrush.EUnavailable {
			t.Fatalf("queued reserve = %v, want %s", err, ticketrush.EUnavailable)
		}
		open()
		if err := <-first; err != nil {
			t.Fatal(err)
		}
		b.Close()
		s.mu.Lock()
		defer s.mu.Unlock()
		if len(s.batches) != 1 || s.batches[0] != 1 || s.stock != 9 {
			t.Fatalf("batches %v, stock %d: the abandoned reserve reached the store", s.batches, s.stock)
		}
	})
}
