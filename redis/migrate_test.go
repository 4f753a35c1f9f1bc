package redis_test

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"

	"github.com/ticketrush/ticketrush"
)

// TestMigrateVisitors writes an event's per-visitor data as layout 1 kept
// it (a sorted set of holds by name, a hash of tickets bought) and checks
// that Migrate moves it into layout 2's one hash unchanged, and that the
// visitor limit, a purchase and a cancel then read and keep the converted
// records.
func TestMigrateVisitors(t *testing.T) {
	s, _, prefix := testStore(t)
	ctx := t.Context()
	o, _ := goredis.ParseURL(serverURL(t))
	c := goredis.NewClient(o)
	defer c.Close()

	ev, err := s.CreateEvent(ctx, ticketrush.NewEvent{Name: "x", TicketQuantity: 100, HoldSeconds: 60, MaxPerVisitor: 4})
	if err != nil {
		t.Fatal(err)
	}
	a, b, buyer := uuid.NewString(), uuid.NewString(), uuid.NewString()
	var aHolds []int64
	for _, r := range []struct {
		visitor string
		amount  int64
	}{{a, 2}, {b, 1}, {a, 1}, {b, 3}, {buyer, 3}} {
		res, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: ev.ID, Amount: r.amount, VisitorToken: r.visitor})
		if err != nil {
			t.Fatal(err)
		}
		switch r.visitor {
		case a:
			aHolds = append(aHolds, res.ID)
		case buyer:
			if _, err := s.Purchase(ctx, res.ID, buyer); err != nil {
				t.Fatal(err)
			}
		}
	}

	// Back to layout 1.
	base := prefix + ":{e:" + strconv.FormatInt(ev.ID, 10) + "}"
	want, err := c.HGetAll(ctx, base+":visitors").Result()
	if err != nil || len(want) != 3 {
		t.Fatalf("visitors = %v, %v; want three", want, err)
	}
	for visitor, rec := range want {
		f := strings.Fields(rec)
		if f[0] != "0" {
			if err := c.HSet(ctx, base+":vbought", visitor, f[0]).Err(); err != nil {
				t.Fatal(err)
			}
		}
		for _, e := range f[1:] {
			var n, x, amount int64
			if _, err := fmt.Sscanf(e, "%d:%d:%d", &n, &x, &amount); err != nil {
				t.Fatalf("entry %q: %v", e, err)
			}
			m := fmt.Sprintf("%s:%017d:%d:%d", visitor, x, n, amount)
			if err := c.ZAdd(ctx, base+":vholds", goredis.Z{Member: m}).Err(); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := c.Del(ctx, base+":visitors").Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, prefix+":schema", 1, 0).Err(); err != nil {
		t.Fatal(err)
	}

	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate from layout 1: %v", err)
	}
	if v, err := c.Get(ctx, prefix+":schema").Int(); err != nil || v != 2 {
		t.Errorf("schema = %d, %v; want 2", v, err)
	}
	if n, err := c.Exists(ctx, base+":vholds", base+":vbought").Result(); err != nil || n != 0 {
		t.Errorf("%d of layout 1's keys still exist (%v)", n, err)
	}
	got, err := c.HGetAll(ctx, base+":visitors").Result()
	if err != nil {
		t.Fatal(err)
	}
	// A record's holds may come in another order.
	sorted := func(m map[string]string) map[string][]string {
		out := map[string][]string{}
		for k, v := range m {
			f := strings.Fields(v)
			out[k] = append(f[:1], slices.Sorted(slices.Values(f[1:]))...)
		}
		return out
	}
	if !maps.EqualFunc(sorted(got), sorted(want), slices.Equal) {
		t.Errorf("after Migrate visitors = %v, want %v", got, want)
	}
	if _, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: ev.ID, Amount: 2, VisitorToken: buyer}); ticketrush.ErrorCode(err) != ticketrush.EVisitorLimit {
		t.Errorf("buyer of 3 reserving 2 after Migrate: %v, want %s", err, ticketrush.EVisitorLimit)
	}

	// Visitor a holds 3 of 4.
	if _, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: ev.ID, Amount: 2, VisitorToken: a}); ticketrush.ErrorCode(err) != ticketrush.EVisitorLimit {
		t.Errorf("reserve over the limit after Migrate: %v, want %s", err, ticketrush.EVisitorLimit)
	}
	if _, err := s.Purchase(ctx, aHolds[0], a); err != nil {
		t.Fatalf("purchase a converted hold: %v", err)
	}
	if _, err := s.Cancel(ctx, aHolds[1], a); err != nil {
		t.Fatalf("cancel a converted hold: %v", err)
	}
	if rec, err := c.HGet(ctx, base+":visitors", a).Result(); err != nil || rec != "2" {
		t.Errorf("visitor a's record after buying 2 and cancelling the rest = %q, %v; want \"2\"", rec, err)
	}
	// Bought 2, so 2 more and no more.
	if _, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: ev.ID, Amount: 3, VisitorToken: a}); ticketrush.ErrorCode(err) != ticketrush.EVisitorLimit {
		t.Errorf("reserve 3 after buying 2: %v, want %s", err, ticketrush.EVisitorLimit)
	}
	if _, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: ev.ID, Amount: 2, VisitorToken: a}); err != nil {
		t.Errorf("reserve 2 after buying 2: %v", err)
	}
}
