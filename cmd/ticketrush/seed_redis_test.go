package main

import (
	"sync"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/redis"
)

// TestSeedDemoOnceRedis starts several nodes' seeding at once on one empty
// Redis: exactly one creates the demo event.
func TestSeedDemoOnceRedis(t *testing.T) {
	const nodes = 8
	for round := range 5 {
		url := redis.NewTestURL(t)
		stores := make([]store, nodes)
		for i := range stores {
			s, _, err := openStore(t.Context(), url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.Migrate(t.Context()); err != nil {
				t.Fatal(err)
			}
			stores[i] = s
		}
		start := make(chan struct{})
		var wg sync.WaitGroup
		var mu sync.Mutex
		var seeded []*ticketrush.Event
		for _, s := range stores {
			wg.Go(func() {
				<-start
				e, err := seedDemo(t.Context(), s, 5*time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if e != nil {
					mu.Lock()
					seeded = append(seeded, e)
					mu.Unlock()
				}
			})
		}
		close(start)
		wg.Wait()
		events, err := stores[0].Events(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(seeded) != 1 || len(events) != 1 {
			t.Fatalf("round %d: %d nodes seeded, %d events; want the demo event once", round, len(seeded), len(events))
		}
		if e := events[0]; e.Name != demoName || e.TicketQuantity != demoTickets || e.MaxPerOrder != ticketrush.DefaultMaxPerOrder {
			t.Errorf("seeded %+v", e)
		}
		// A later start seeds nothing.
		if e, err := seedDemo(t.Context(), stores[1], 5*time.Minute); e != nil || err != nil {
			t.Errorf("seeding again = %+v, %v; want nothing", e, err)
		}
	}
}
