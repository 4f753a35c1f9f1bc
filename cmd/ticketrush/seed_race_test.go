package main

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush/postgres"
)

// TestSeedDemoOnceAcrossNodes: several nodes starting at once on one empty
// PostgreSQL database create the demo event once.
func TestSeedDemoOnceAcrossNodes(t *testing.T) {
	url := postgres.NewTestDatabase(t)
	ctx := context.Background()
	const nodes = 8
	stores := make([]*postgres.Store, nodes)
	for i := range stores {
		s, err := postgres.Open(ctx, url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stores[i] = s
	}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, s := range stores {
		wg.Go(func() {
			<-start
			if _, err := seedDemo(ctx, s, 5*time.Minute); err != nil {
				t.Error(err)
			}
		})
	}
	close(start)
	wg.Wait()
	events, err := stores[0].Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Name != demoName || events[0].TicketQuantity != demoTickets {
		t.Fatalf("%d events after %d nodes seeded at once, want the demo event once: %+v", len(events), nodes, events)
	}
}
