package redis_test

import (
	"testing"

	"github.com/google/uuid"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/batch"
)

// benchReserve drives b.N reserves of one ticket on one event with ample
// stock from 256 goroutines (on two cores), as the HTTP bench does, through
// r(store). It uses Redis' own clock, as production does.
func benchReserve(b *testing.B, r func(s ticketrush.Store) ticketrush.Reserver) {
	url := serverURL(b)
	prefix := uniquePrefix()
	cleanupPrefix(b, url, prefix)
	s := open(b, url, prefix, nil)
	defer s.Close()
	ev, err := s.CreateEvent(b.Context(), ticketrush.NewEvent{Name: "bench", TicketQuantity: ticketrush.MaxTicketQuantity, HoldSeconds: 300})
	if err != nil {
		b.Fatal(err)
	}
	reserver := r(s)
	visitors := make([]string, 1024)
	for i := range visitors {
		visitors[i] = uuid.NewString()
	}
	b.SetParallelism(128)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			rq := ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: visitors[i%len(visitors)]}
			if _, err := reserver.Reserve(b.Context(), rq); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reserves/s")
	st, err := s.Stats(b.Context(), ev.ID)
	if err != nil {
		b.Fatal(err)
	}
	if st.Held != int64(b.N) || st.Capacity != st.Available+st.Held+st.Purchased {
		b.Errorf("after %d reserves: %+v", b.N, *st)
	}
}

// BenchmarkReserve is the per-request strategy: one script call per reserve.
func BenchmarkReserve(b *testing.B) {
	benchReserve(b, func(s ticketrush.Store) ticketrush.Reserver { return s })
}

// BenchmarkReserveBatch is group commit: the batcher turns the concurrent
// reserves into one reserve_batch.lua call per batch.
func BenchmarkReserveBatch(b *testing.B) {
	benchReserve(b, func(s ticketrush.Store) ticketrush.Reserver {
		bt := batch.New(s, batch.Options{})
		b.Cleanup(bt.Close)
		return bt
	})
}

// BenchmarkReserveBatchCall measures ReserveBatch itself, one call of 256
// requests at a time with no concurrency: the cost of the script per
// reserve, without the batcher or the contention.
func BenchmarkReserveBatchCall(b *testing.B) {
	url := serverURL(b)
	prefix := uniquePrefix()
	cleanupPrefix(b, url, prefix)
	s := open(b, url, prefix, nil)
	defer s.Close()
	ev, err := s.CreateEvent(b.Context(), ticketrush.NewEvent{Name: "bench", TicketQuantity: ticketrush.MaxTicketQuantity, HoldSeconds: 300})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]ticketrush.ReserveRequest, 256)
	for i := range reqs {
		reqs[i] = ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()}
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := s.ReserveBatch(b.Context(), ev.ID, reqs)
		if err != nil {
			b.Fatal(err)
		}
		if res[len(res)-1].Err != nil {
			b.Fatal(res[len(res)-1].Err)
		}
	}
	b.ReportMetric(float64(b.N*len(reqs))/b.Elapsed().Seconds(), "reserves/s")
}
