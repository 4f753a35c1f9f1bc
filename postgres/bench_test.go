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
