package httpapi

import (
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
