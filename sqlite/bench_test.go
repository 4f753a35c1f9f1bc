package sqlite

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/uuid"
	"github.com/ticketrush/ticketrush"
)

// The benchmarks measure the store alone, with the durable settings the
// service runs with (WAL, synchronous=FULL: one fsync per commit), on one hot
// event with ample stock. Each reports reservations/s; compare
// BenchmarkReserve (the original's transaction per request) with
// BenchmarkReserveBatch/size=256 (group commit).
//
//	go test -run '^$' -bench Reserve ./sqlite/

// benchStore opens a fresh migrated store on the real clock with one event
// that cannot sell out, and a pool of visitors.
func benchStore(b *testing.B) (*Store, *ticketrush.Event, []string) {
	b.Helper()
	s, err := Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.Migrate(context.Background()); err != nil {
		b.Fatal(err)
	}
	ev, err := s.CreateEvent(context.Background(), concert(ticketrush.MaxTicketQuantity))
	if err != nil {
		b.Fatal(err)
	}
	visitors := make([]string, 4096)
	for i := range visitors {
		visitors[i] = uuid.NewString()
	}
	return s, ev, visitors
}

// BenchmarkReserve is the lock strategy: one write transaction, so one fsync,
// per reservation. "parallel" has 64 goroutines reserving at once, which
// queue for the single write connection.
func BenchmarkReserve(b *testing.B) {
	b.Run("serial", func(b *testing.B) {
		s, ev, visitors := benchStore(b)
		ctx := context.Background()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			rq := ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1 + int64(i%4), VisitorToken: visitors[i%len(visitors)]}
			if _, err := s.Reserve(ctx, rq); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reservations/s")
	})
	b.Run("parallel", func(b *testing.B) {
		s, ev, visitors := benchStore(b)
		ctx := context.Background()
		b.SetParallelism(64)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				rq := ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1 + int64(i%4), VisitorToken: visitors[i%len(visitors)]}
				if _, err := s.Reserve(ctx, rq); err != nil {
					b.Error(err)
					return
				}
				i++
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reservations/s")
	})
}

// BenchmarkReserveBatch is group commit: size reservations per write
// transaction. b.N counts reservations, not batches.
func BenchmarkReserveBatch(b *testing.B) {
	for _, size := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			s, ev, visitors := benchStore(b)
			ctx := context.Background()
			reqs := make([]ticketrush.ReserveRequest, size)
			b.ResetTimer()
			for done := 0; done < b.N; done += size {
				n := min(size, b.N-done)
				for i := range n {
					reqs[i] = ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1 + int64((done+i)%4),
						VisitorToken: visitors[(done+i)%len(visitors)]}
				}
				results, err := s.ReserveBatch(ctx, ev.ID, reqs[:n])
				if err != nil {
					b.Fatal(err)
				}
				for _, r := range results {
					if r.Err != nil {
						b.Fatal(r.Err)
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reservations/s")
		})
	}
}

// BenchmarkJoinQueue is the waiting room's group commit: 256 joins of new
// visitors per write transaction, as the HTTP layer's batcher sends them
// under load. b.N counts joins.
//
//	go test -run '^$' -bench JoinQueue ./sqlite/
func BenchmarkJoinQueue(b *testing.B) {
	s, _, _ := benchStore(b)
	ctx := context.Background()
	room := concert(ticketrush.MaxTicketQuantity)
	room.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 1, PassSeconds: 300}
	ev, err := s.CreateEvent(ctx, room)
	if err != nil {
		b.Fatal(err)
	}
	const size = 256
	reqs := make([]ticketrush.JoinRequest, size)
	b.ResetTimer()
	for done := 0; done < b.N; done += size {
		n := min(size, b.N-done)
		b.StopTimer()
		for i := range n {
			reqs[i] = ticketrush.JoinRequest{Visitor: uuid.NewString()}
		}
		b.StartTimer()
		results, err := s.JoinQueue(ctx, ev.ID, reqs[:n])
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range results {
			if r.Err != nil || !r.Created {
				b.Fatalf("%+v", r)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "joins/s")
}

// BenchmarkReserveBatches is group commit over many events: 64 reservations
// per write transaction, spread evenly over events, as the batcher sends
// them when the load is spread (a transaction then touches each event's
// pages of the indexes). b.N counts reservations; compare events=50 with
// events=1.
//
//	go test -run '^$' -bench ReserveBatches ./sqlite/
func BenchmarkReserveBatches(b *testing.B) {
	const perTx = 64
	for _, n := range []int{1, 50} {
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			s, ev, visitors := benchStore(b)
			ctx := context.Background()
			ids := []int64{ev.ID}
			for len(ids) < n {
				e, err := s.CreateEvent(ctx, concert(ticketrush.MaxTicketQuantity))
				if err != nil {
					b.Fatal(err)
				}
				ids = append(ids, e.ID)
			}
			batches := make([]ticketrush.EventBatch, n)
			b.ResetTimer()
			for done := 0; done < b.N; done += perTx {
				for k := range batches {
					batches[k] = ticketrush.EventBatch{EventID: ids[k], Reqs: batches[k].Reqs[:0]}
				}
				for i := range min(perTx, b.N-done) {
					k := (done + i) % n
					batches[k].Reqs = append(batches[k].Reqs, ticketrush.ReserveRequest{EventID: ids[k], Amount: 1,
						VisitorToken: visitors[(done+i)%len(visitors)]})
				}
				out, err := s.ReserveBatches(ctx, batches)
				if err != nil {
					b.Fatal(err)
				}
				for _, results := range out {
					for _, r := range results {
						if r.Err != nil {
							b.Fatal(r.Err)
						}
					}
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reservations/s")
		})
	}
}
