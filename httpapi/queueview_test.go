package httpapi

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

func TestQueueViewRetryAfter(t *testing.T) {
	now := start
	ev := &ticketrush.Event{ID: 1, WaitingRoom: &ticketrush.WaitingRoom{AdmitPerMinute: 600}}
	st := &ticketrush.QueueStats{Serving: 100, Available: 10, Shuffled: true}
	waiting := func(pos int64) (QueueStatus, int64) {
		return queueView(ev, st, &ticketrush.QueueEntry{State: ticketrush.QueueWaiting, Position: pos}, now)
	}
	near, nearRetry := waiting(101)
	if *near.Ahead != 0 || *near.EstimatedWaitSeconds != 1 || nearRetry > 2 {
		t.Errorf("front: %+v, retry %d", near, nearRetry)
	}
	far, farRetry := waiting(100 + 6000) // ten minutes at 600 a minute
	if *far.Ahead != 5999 || *far.EstimatedWaitSeconds != 600 || farRetry < 20 || farRetry > 25 {
		t.Errorf("far back: %+v, retry %d", far, farRetry)
	}

	// Pre-queue pollers spread over the seconds after the sale starts.
	sale := now.Add(5 * time.Second)
	pre := &ticketrush.Event{ID: 1, SaleStartsAt: &sale, WaitingRoom: ev.WaitingRoom}
	seen := map[int64]bool{}
	for range 200 {
		v, r := queueView(pre, &ticketrush.QueueStats{Available: 10}, &ticketrush.QueueEntry{State: ticketrush.QueuePrequeue}, now)
		if v.State != "prequeue" || v.Position != nil || r < 6 || r > 10 {
			t.Fatalf("pre-queue near the start: %+v, retry %d", v, r)
		}
		seen[r] = true
	}
	if len(seen) < 3 {
		t.Errorf("retry values near the start %v: no jitter", seen)
	}
	hourAway := now.Add(time.Hour)
	pre.SaleStartsAt = &hourAway
	if _, r := queueView(pre, &ticketrush.QueueStats{Available: 10}, &ticketrush.QueueEntry{State: ticketrush.QueuePrequeue}, now); r != 30 {
		t.Errorf("an hour before: retry %d, want 30", r)
	}

	// Sold out: no stock and no holds; holds outstanding keep the place.
	out, _ := queueView(ev, &ticketrush.QueueStats{Serving: 1}, &ticketrush.QueueEntry{State: ticketrush.QueueWaiting, Position: 5}, now)
	if out.State != "sold_out" || out.Position != nil {
		t.Errorf("sold out: %+v", out)
	}
	held, _ := queueView(ev, &ticketrush.QueueStats{Serving: 1, Held: 3}, &ticketrush.QueueEntry{State: ticketrush.QueueWaiting, Position: 5}, now)
	if held.State != "waiting" || *held.Ahead != 3 {
		t.Errorf("holds outstanding: %+v", held)
	}
}

// TestRoomCacheLoadsOncePerInterval: however many polls arrive at once, a
// node reads an event's figures once per interval.
func TestRoomCacheLoadsOncePerInterval(t *testing.T) {
	var loads atomic.Int64
	c := &roomCache{ttl: time.Hour, timeout: time.Second, load: func(ctx context.Context, id int64) roomSnap {
		if id == 7 {
			loads.Add(1)
			time.Sleep(10 * time.Millisecond) // long enough for the others to pile up
		}
		return roomSnap{event: &ticketrush.Event{ID: id}}
	}}
	var wg sync.WaitGroup
	for range 100 {
		wg.Go(func() {
			if snap := c.get(context.Background(), 7); snap.event == nil || snap.event.ID != 7 {
				t.Errorf("snap = %+v", snap)
			}
		})
	}
	wg.Wait()
	if n := loads.Load(); n != 1 {
		t.Errorf("%d loads for 100 concurrent polls, want 1", n)
	}
	c.forget(7)
	c.get(context.Background(), 7)
	if n := loads.Load(); n != 2 {
		t.Errorf("after forget: %d loads, want 2", n)
	}
	// Made-up ids do not grow the cache past its cap.
	for id := range int64(3 * maxCachedRooms) {
		c.get(context.Background(), 1000+id)
	}
	if n := c.n.Load(); n > maxCachedRooms {
		t.Errorf("%d events cached, cap %d", n, maxCachedRooms)
	}
}

// TestRoomCacheAnswersWhileReloading: when an advance has moved the queue
// (or the figures aged), one poll reloads them and the others are answered
// from the snapshot they have meanwhile, rather than all waiting for one
// read; a snapshot older than maxStaleRoom is never answered, and settings
// changes (forget) are never answered from the old snapshot.
func TestRoomCacheAnswersWhileReloading(t *testing.T) {
	var loads atomic.Int64
	release := make(chan struct{})
	c := &roomCache{ttl: time.Hour, timeout: 5 * time.Second, load: func(ctx context.Context, id int64) roomSnap {
		n := loads.Add(1)
		if n == 2 {
			<-release // the reload hangs until the test lets it go
		}
		return roomSnap{event: &ticketrush.Event{ID: id}, stats: &ticketrush.QueueStats{EventID: id, Serving: n}}
	}}
	if snap := c.get(context.Background(), 7); snap.stats.Serving != 1 {
		t.Fatalf("first load: %+v", snap.stats)
	}
	c.expire(7)
	reloaded := make(chan roomSnap)
	go func() { reloaded <- c.get(context.Background(), 7) }()
	for loads.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	got := make(chan roomSnap)
	go func() { got <- c.get(context.Background(), 7) }()
	select {
	case snap := <-got:
		if snap.stats.Serving != 1 {
			t.Errorf("answered during the reload: %+v, want the snapshot before it", snap.stats)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a poll waited for another request's reload")
	}
	close(release)
	if snap := <-reloaded; snap.stats.Serving != 2 {
		t.Errorf("the reloading request got %+v, want the new figures", snap.stats)
	}
	if snap := c.get(context.Background(), 7); snap.stats.Serving != 2 {
		t.Errorf("after the reload: %+v, want the new figures", snap.stats)
	}

	// Too old to answer: a request waits for the reload.
	v, _ := c.cells.Load(int64(7))
	cell := v.(*roomCell)
	old := cell.cur.Load()
	cell.cur.Store(&timedSnap{snap: old.snap, at: time.Now().Add(-2 * maxStaleRoom), expired: true})
	cell.mu.Lock()
	waited := make(chan roomSnap)
	go func() { waited <- c.get(context.Background(), 7) }()
	select {
	case snap := <-waited:
		t.Fatalf("answered from a snapshot older than %s: %+v", maxStaleRoom, snap.stats)
	case <-time.After(100 * time.Millisecond):
	}
	cell.mu.Unlock()
	if snap := <-waited; snap.stats.Serving != 3 {
		t.Errorf("after waiting: %+v, want a fresh load", snap.stats)
	}

	// forget drops the snapshot: the next request loads, whatever others do.
	c.forget(7)
	if snap := c.get(context.Background(), 7); snap.stats.Serving != 4 {
		t.Errorf("after forget: %+v, want a fresh load", snap.stats)
	}
}

// TestRoomCacheOffLoadsUnderTimeout: with the cache off, every request
// loads the room itself, and under the server's timeout, not the
// request's context alone (a poll answered from the cache makes no timer,
// so the load must bring its own deadline).
func TestRoomCacheOffLoadsUnderTimeout(t *testing.T) {
	var deadline bool
	c := &roomCache{ttl: -1, timeout: time.Second, load: func(ctx context.Context, id int64) roomSnap {
		_, deadline = ctx.Deadline()
		return roomSnap{event: &ticketrush.Event{ID: id}}
	}}
	if snap := c.get(context.Background(), 7); snap.event == nil || snap.event.ID != 7 {
		t.Fatalf("snapshot %+v", snap)
	}
	if !deadline {
		t.Error("the load ran without a deadline")
	}
}
