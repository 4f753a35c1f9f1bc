package main

import (
	"context"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestSeedOnce starts the seed of several nodes at once on one empty SQLite
// database, each with a store of its own as separate processes would have:
// the demo event is created once.
func TestSeedOnce(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "ticketrush.db")
	const nodes = 8
	stores := make([]store, nodes)
	for i := range stores {
		s, _, err := openStore(t.Context(), dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatal(err)
		}
		stores[i] = s
	}
	var (
		wg          sync.WaitGroup
		mu          sync.Mutex
		seeded      int
		start       = make(chan struct{})
		ctx, cancel = context.WithTimeout(t.Context(), 30*time.Second)
	)
	defer cancel()
	for _, s := range stores {
		wg.Go(func() {
			<-start
			e, err := seedDemo(ctx, s, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			if e != nil {
				mu.Lock()
				seeded++
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
	if seeded != 1 || len(events) != 1 {
		t.Fatalf("%d nodes seeded, %d events: want the demo event created once", seeded, len(events))
	}
}
