package postgres

import (
	"context"
	"sync"
)

// gates bound how many connections the lock strategy's reserves of one
// event hold at once. Every such reserve waits on the event's row lock, so
// without a bound a hot event takes the whole pool and starves readiness
// checks, purchases and every other event; waiting here, in Go, costs no
// connection and ends when the caller's context does.
type gates struct {
	limit int
	mu    sync.Mutex
	m     map[int64]*gate
}

type gate struct {
	slots chan struct{}
	users int // holders and waiters; the gate is dropped at zero
}

func newGates(limit int) *gates {
	return &gates{limit: max(limit, 1), m: map[int64]*gate{}}
}

// enter waits for a slot of the event's gate and returns its release.
func (g *gates) enter(ctx context.Context, eventID int64) (func(), error) {
	g.mu.Lock()
	gt := g.m[eventID]
	if gt == nil {
		gt = &gate{slots: make(chan struct{}, g.limit)}
		g.m[eventID] = gt
	}
	gt.users++
	g.mu.Unlock()
	leave := func() {
		g.mu.Lock()
		if gt.users--; gt.users == 0 {
			delete(g.m, eventID)
		}
		g.mu.Unlock()
	}
	select {
	case gt.slots <- struct{}{}:
		return func() { <-gt.slots; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}
