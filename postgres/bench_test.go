package postgres_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ticketrush/ticketrush"
)

// The two benchmarks sell one hot event, the rush's shape. Each op is one
// reservation, so ns/op compare directly and reserves/s is reported too.

// BenchmarkReserveBatch is group commit: one goroutine sends batches of 256
// requests one after the other, as the batcher does for one event.
func BenchmarkReserveBatch(b *testing.B) {
	const size = 256
	s := openStores(b, nil, 1)[0]
	e := createEvent(b, s, ticketrush.NewEvent{TicketQuantity: ticketrush.MaxTicketQuantity})
	ctx := context.Background()
	reqs := make([]ticketrush.ReserveRequest, 0, size)
	b.ResetTimer()
	start := time.Now()
	for done := 0; done < b.N; done += len(reqs) {
		reqs = reqs[:0]
		for range min(size, b.N-done) {
			reqs = append(reqs, ticketrush.ReserveRequest{EventID: e.ID, Amount: 1, VisitorToken: uuid.NewString()})
		}
		res, err := s.ReserveBatch(ctx, e.ID, reqs)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range res {
			if r.Err != nil {
				b.Fatal(r.Err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reserves/s")
}

// BenchmarkReserve is the original's strategy: one transaction per
// request, from 64 goroutines at once.
func BenchmarkReserve(b *testing.B) {
	s := openStores(b, nil, 1)[0]
	e := createEvent(b, s, ticketrush.NewEvent{TicketQuantity: ticketrush.MaxTicketQuantity})
	ctx := context.Background()
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			_, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: e.ID, Amount: 1, VisitorToken: uuid.NewString()})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reserves/s")
}

// BenchmarkReserveBatches is group commit over several events: each
// transaction carries 256 requests spread evenly over the events, as the
// batcher sends them when the load is spread; "capped" is one event with
// max_per_visitor 4, whose every request also reads its visitor's total.
func BenchmarkReserveBatches(b *testing.B) {
	for _, c := range []struct {
		name   string
		events int
		cap    int64
	}{{"events=1", 1, 0}, {"events=50", 50, 0}, {"capped", 1, 4}} {
		b.Run(c.name, func(b *testing.B) {
			const size = 256
			s := openStores(b, nil, 1)[0]
			var ids []int64
			for range c.events {
				e := createEvent(b, s, ticketrush.NewEvent{TicketQuantity: ticketrush.MaxTicketQuantity, MaxPerVisitor: c.cap})
				ids = append(ids, e.ID)
			}
			ctx := context.Background()
			b.ResetTimer()
			start := time.Now()
			for done := 0; done < b.N; {
				batches := make([]ticketrush.EventBatch, len(ids))
				for i, id := range ids {
					batches[i].EventID = id
				}
				n := min(size, b.N-done)
				for i := range n {
					k := i % len(ids)
					batches[k].Reqs = append(batches[k].Reqs, ticketrush.ReserveRequest{EventID: ids[k], Amount: 1, VisitorToken: uuid.NewString()})
				}
				done += n
				res, err := s.ReserveBatches(ctx, batches)
				if err != nil {
					b.Fatal(err)
				}
				for _, rs := range res {
					for _, r := range rs {
						if r.Err != nil {
							b.Fatal(r.Err)
						}
					}
				}
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "reserves/s")
		})
	}
}
