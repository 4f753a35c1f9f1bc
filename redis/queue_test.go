package redis_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketrush/ticketrush"
)

// scriptCounter counts the script calls a store sends.
type scriptCounter struct{ n atomic.Int64 }

func (c *scriptCounter) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (c *scriptCounter) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if cmd.Name() == "evalsha" || cmd.Name() == "eval" {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *scriptCounter) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return next
}

// TestJoinBatchIsOneScript: a batch of a thousand joins is one script call
// (group commit), not a thousand.
func TestJoinBatchIsOneScript(t *testing.T) {
	s, _, _ := testStore(t)
	ev, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: 10, HoldSeconds: 60,
		WaitingRoom: &ticketrush.WaitingRoom{AdmitPerMinute: 60, PassSeconds: 300}})
	if err != nil {
		t.Fatal(err)
	}
	// Load the script first, so the count is of EVALSHA calls alone.
	if _, err := s.JoinQueue(t.Context(), ev.ID, []ticketrush.JoinRequest{{Visitor: uuid.NewString()}}); err != nil {
		t.Fatal(err)
	}
	var c scriptCounter
	s.AddHook(&c)
	reqs := make([]ticketrush.JoinRequest, ticketrush.QueueChunk)
	for i := range reqs {
		reqs[i] = ticketrush.JoinRequest{Visitor: uuid.NewString()}
	}
	res, err := s.JoinQueue(t.Context(), ev.ID, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil || !r.Created || r.Entry.Position != int64(i+2) {
			t.Fatalf("join %d = %+v", i, r)
		}
	}
	if n := c.n.Load(); n != 1 {
		t.Errorf("a batch of %d joins took %d script calls, want 1", len(reqs), n)
	}
}

// TestShuffleKeysAreFresh shuffles two pre-queues of the same size: the
// orders differ, as keys drawn afresh for each shuffle make them. Keys
// derived from anything the two share (join order, a fixed seed, as Redis
// before 7 gave Lua's math.random on every call) would give both the same
// permutation of join order.
func TestShuffleKeysAreFresh(t *testing.T) {
	s, clock, _ := testStore(t)
	opens := clock.Now()
	sale := opens.Add(time.Hour)
	const n = 40
	var perms [2][]int64
	var evs [2]*ticketrush.Event
	var joined [2][]string
	for k := range evs {
		ev, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: 10, HoldSeconds: 60,
			SaleStartsAt: &sale, WaitingRoom: &ticketrush.WaitingRoom{AdmitPerMinute: 60, PassSeconds: 300, PrequeueOpensAt: &opens}})
		if err != nil {
			t.Fatal(err)
		}
		evs[k] = ev
		reqs := make([]ticketrush.JoinRequest, n)
		for i := range reqs {
			reqs[i] = ticketrush.JoinRequest{Visitor: uuid.NewString()}
			joined[k] = append(joined[k], reqs[i].Visitor)
		}
		if _, err := s.JoinQueue(t.Context(), ev.ID, reqs); err != nil {
			t.Fatal(err)
		}
	}
	clock.Set(sale)
	for k, ev := range evs {
		for {
			a, err := s.AdvanceQueue(t.Context(), ev.ID)
			if err != nil {
				t.Fatal(err)
			}
			if !a.More {
				break
			}
		}
		for _, v := range joined[k] {
			e, err := s.QueueEntry(t.Context(), ev.ID, v)
			if err != nil {
				t.Fatal(err)
			}
			perms[k] = append(perms[k], e.Position)
		}
	}
	if slices.Equal(perms[0], perms[1]) {
		t.Errorf("two pre-queues got the same order of join: %v", perms[0])
	}
}

// TestNoRunRecordsOnOnePrimary: a single Redis is never sent a call twice,
// so the scripts keep no run records there.
func TestNoRunRecordsOnOnePrimary(t *testing.T) {
	s, _, prefix := testStore(t)
	ev, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: 10, HoldSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()}); err != nil {
		t.Fatal(err)
	}
	o, _ := goredis.ParseURL(serverURL(t))
	c := goredis.NewClient(o)
	defer c.Close()
	if keys, err := c.Keys(t.Context(), prefix+":*:run:*").Result(); err != nil || len(keys) != 0 {
		t.Errorf("run records %v, %v; want none", keys, err)
	}
}
