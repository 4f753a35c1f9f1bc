package redis_test

import (
	"context"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/redis"
)

// relayedCluster opens a cluster store whose connections to every node go
// through a relay of that node, and returns the relays.
func relayedCluster(t *testing.T, addrs []string, prefix string, clock ticketrush.Clock) (*redis.Store, []*relay) {
	t.Helper()
	byAddr := map[string]*relay{}
	var relays []*relay
	for _, a := range addrs {
		r := startRelay(t, a)
		byAddr[a] = r
		relays = append(relays, r)
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if r, ok := byAddr[addr]; ok {
			addr = r.addr()
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
	s, err := redis.OpenCluster(t.Context(), addrs, redis.Options{Now: clock, Prefix: prefix, Dialer: dial})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, relays
}

// loseNextScriptReply makes the next script reply on any node lost, and
// returns a function that disarms the relays again.
func loseNextScriptReply(relays []*relay) func() {
	for _, r := range relays {
		r.dropScriptReplies(1)
	}
	return func() {
		for _, r := range relays {
			r.dropScriptReplies(0)
		}
	}
}

// resentScripts: the cluster client sends a script again after its reply
// was lost (MaxRedirects), and every write script answers the repeat as
// its first run did instead of running twice.
func resentScripts(t *testing.T, addrs []string) {
	prefix := uniquePrefix()
	clock := &fixedClock{now: time.Date(2025, 11, 18, 7, 54, 23, 123456000, time.UTC)}
	s, relays := relayedCluster(t, addrs, prefix, clock.Now)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Each step first runs once with every reply delivered, so the node has
	// the script cached and the lost reply is the script's own.
	lostAfter := func(what string, setup func(), call func() error) {
		t.Helper()
		setup()
		if err := call(); err != nil {
			t.Fatalf("%s (warm-up): %v", what, err)
		}
		setup()
		disarm := loseNextScriptReply(relays)
		defer disarm()
		if err := call(); err != nil {
			t.Errorf("%s, its reply lost once: %v", what, err)
		}
		for _, r := range relays {
			if r.drop.Load() != 0 {
				continue
			}
			return
		}
		t.Errorf("%s: no reply was lost, the test proves nothing", what)
	}
	lost := func(what string, call func() error) {
		t.Helper()
		lostAfter(what, func() {}, call)
	}

	ne := ticketrush.NewEvent{Name: "x", TicketQuantity: 1000, HoldSeconds: 60, MaxPerOrder: 100}
	ev, err := s.CreateEvent(t.Context(), ne)
	if err != nil {
		t.Fatal(err)
	}

	heldNow := func() int64 {
		t.Helper()
		st, err := s.Stats(t.Context(), ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		return st.Held
	}

	var before int64
	lost("ReserveBatch", func() error {
		before = heldNow()
		res, err := s.ReserveBatch(t.Context(), ev.ID, []ticketrush.ReserveRequest{
			{EventID: ev.ID, Amount: 3, VisitorToken: uuid.NewString()},
			{EventID: ev.ID, Amount: 4, VisitorToken: uuid.NewString()},
		})
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Err != nil {
				return r.Err
			}
		}
		if h := heldNow(); h != before+7 {
			t.Errorf("held %d after a batch of 7, want %d: the batch ran twice", h, before+7)
		}
		return nil
	})

	lost("Reserve", func() error {
		before = heldNow()
		if _, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 5, VisitorToken: uuid.NewString()}); err != nil {
			return err
		}
		if h := heldNow(); h != before+5 {
			t.Errorf("held %d after a reserve of 5, want %d: it ran twice", h, before+5)
		}
		return nil
	})

	var hold *ticketrush.Reservation
	lostAfter("Purchase", func() {
		var err error
		hold, err = s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()})
		if err != nil {
			t.Fatal(err)
		}
	}, func() error {
		p, err := s.Purchase(t.Context(), hold.ID, hold.UserUID)
		if err == nil && p.Status != ticketrush.StatusPurchased {
			t.Errorf("purchase answered %+v", p)
		}
		return err
	})

	room := ne
	room.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 60_000, PassSeconds: 300}
	rev, err := s.CreateEvent(t.Context(), room)
	if err != nil {
		t.Fatal(err)
	}
	lost("JoinQueue", func() error {
		res, err := s.JoinQueue(t.Context(), rev.ID, []ticketrush.JoinRequest{{Visitor: uuid.NewString()}, {Visitor: uuid.NewString()}})
		if err != nil {
			return err
		}
		for _, r := range res {
			if r.Err != nil {
				return r.Err
			}
			if !r.Created {
				t.Errorf("a first join answered Created false: the join ran twice")
			}
		}
		return nil
	})
	join2 := func() {
		clock.Advance(time.Second) // room to admit both at 1,000 a second
		if _, err := s.JoinQueue(t.Context(), rev.ID, []ticketrush.JoinRequest{{Visitor: uuid.NewString()}, {Visitor: uuid.NewString()}}); err != nil {
			t.Fatal(err)
		}
	}
	lostAfter("AdvanceQueue", join2, func() error {
		st, err := s.QueueStats(t.Context(), rev.ID)
		if err != nil {
			return err
		}
		a, err := s.AdvanceQueue(t.Context(), rev.ID)
		if err == nil && int64(a.Admitted) != st.Waiting {
			t.Errorf("AdvanceQueue admitted %d, want the %d waiting", a.Admitted, st.Waiting)
		}
		return err
	})
	st, err := s.QueueStats(t.Context(), rev.ID)
	if err != nil || st.Admitted != 8 || st.Tail != 8 {
		t.Errorf("QueueStats = %+v, %v; want 8 joined and admitted", st, err)
	}

	lost("DeleteEvent", func() error {
		e, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "gone", TicketQuantity: 1, HoldSeconds: 60})
		if err != nil {
			return err
		}
		return s.DeleteEvent(t.Context(), e.ID)
	})

	events, err := s.Events(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	lost("CreateEvent", func() error { _, err := s.CreateEvent(t.Context(), ne); return err })
	after, err := s.Events(t.Context())
	if err != nil || len(after) != len(events)+2 {
		t.Errorf("Events = %d events, %v; want %d", len(after), err, len(events)+2)
	}
}

// runRecords: on a cluster a write keeps its answer for 30 s past its
// deadline, under its event's tag.
func runRecords(t *testing.T, addrs []string) {
	prefix := uniquePrefix()
	s, err := redis.OpenCluster(t.Context(), addrs, redis.Options{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ev, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: 10, HoldSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()}); err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, a := range addrs {
		c := goredis.NewClient(&goredis.Options{Addr: a})
		keys, err := c.Keys(t.Context(), prefix+":*:run:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			found = append(found, k)
			if !strings.HasPrefix(k, eventKey(t, s, ev.ID)+":run:") {
				t.Errorf("run record %q outside the event's tag", k)
			}
			ttl, err := c.TTL(t.Context(), k).Result()
			if err != nil || ttl < 35*time.Second || ttl > 40*time.Second {
				t.Errorf("run record TTL %v, %v; want the 10 s deadline + 30 s", ttl, err)
			}
		}
		c.Close()
	}
	if len(found) != 1 {
		t.Errorf("run records %v, want the reserve's one", found)
	}
}

// slotMigration moves an event's slot to another primary while a store is
// open: the store follows the MOVED redirects (the retries kept for them)
// and every operation goes on.
func slotMigration(t *testing.T, addrs []string) {
	s, err := redis.OpenCluster(t.Context(), addrs, redis.Options{Prefix: uniquePrefix()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ne := ticketrush.NewEvent{Name: "x", TicketQuantity: 100, HoldSeconds: 60,
		WaitingRoom: &ticketrush.WaitingRoom{AdmitPerMinute: 60_000, PassSeconds: 300}}
	ev, err := s.CreateEvent(t.Context(), ne)
	if err != nil {
		t.Fatal(err)
	}
	v := uuid.NewString()
	if _, err := s.JoinQueue(t.Context(), ev.ID, []ticketrush.JoinRequest{{Visitor: v}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AdvanceQueue(t.Context(), ev.ID); err != nil {
		t.Fatal(err)
	}
	entry, err := s.QueueEntry(t.Context(), ev.ID, v)
	if err != nil || entry.State != ticketrush.QueueAdmitted {
		t.Fatalf("QueueEntry = %+v, %v", entry, err)
	}

	from, to := migrateSlot(t, addrs, s, ev.ID)
	t.Logf("moved event %d from %s to %s", ev.ID, from, to)

	r, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 2, VisitorToken: v, Admission: entry.Attempt})
	if err != nil {
		t.Fatalf("Reserve after the slot moved: %v", err)
	}
	if _, err := s.JoinQueue(t.Context(), ev.ID, []ticketrush.JoinRequest{{Visitor: uuid.NewString()}}); err != nil {
		t.Fatalf("JoinQueue after the slot moved: %v", err)
	}
	if _, err := s.AdvanceQueue(t.Context(), ev.ID); err != nil {
		t.Fatalf("AdvanceQueue after the slot moved: %v", err)
	}
	if _, err := s.Purchase(t.Context(), r.ID, v); err != nil {
		t.Fatalf("Purchase after the slot moved: %v", err)
	}
	st, err := s.Stats(t.Context(), ev.ID)
	if err != nil || *st != (ticketrush.Stats{EventID: ev.ID, Capacity: 100, Available: 98, Purchased: 2}) {
		t.Errorf("Stats = %+v, %v", st, err)
	}
	qs, err := s.QueueStats(t.Context(), ev.ID)
	if err != nil || qs.Admitted != 2 || qs.Tail != 2 {
		t.Errorf("QueueStats = %+v, %v; want 2 joined and admitted", qs, err)
	}
	// The keys are on the new primary now.
	c := goredis.NewClient(&goredis.Options{Addr: to})
	defer c.Close()
	if n, err := c.Exists(t.Context(), eventKey(t, s, ev.ID)).Result(); err != nil || n != 1 {
		t.Errorf("event hash on %s: %d, %v", to, n, err)
	}
}

// eventKey finds the event's hash key by its tag on any primary.
func eventKey(t *testing.T, s *redis.Store, id int64) string {
	t.Helper()
	return s.Prefix() + ":{e:" + strconv.FormatInt(id, 10) + "}"
}

// migrateSlot moves the slot of an event's keys to another primary, as
// redis-cli --cluster reshard does: IMPORTING on the target, MIGRATING on
// the source, MIGRATE of every key, then SETSLOT NODE on every primary.
func migrateSlot(t *testing.T, addrs []string, s *redis.Store, id int64) (from, to string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	clients := map[string]*goredis.Client{}
	ids := map[string]string{}
	for _, a := range addrs {
		c := goredis.NewClient(&goredis.Options{Addr: a})
		defer c.Close()
		clients[a] = c
		id, err := c.Do(ctx, "CLUSTER", "MYID").Text()
		if err != nil {
			t.Fatal(err)
		}
		ids[a] = id
	}
	key := eventKey(t, s, id)
	slot, err := clients[addrs[0]].ClusterKeySlot(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	ranges, err := clients[addrs[0]].ClusterSlots(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range ranges {
		if int64(r.Start) <= slot && slot <= int64(r.End) {
			from = r.Nodes[0].Addr
		}
	}
	for _, a := range addrs {
		if a != from {
			to = a
			break
		}
	}
	if from == "" || clients[from] == nil {
		t.Fatalf("no primary found for slot %d", slot)
	}
	src, dst := clients[from], clients[to]
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "IMPORTING", ids[from]).Err())
	must(src.Do(ctx, "CLUSTER", "SETSLOT", slot, "MIGRATING", ids[to]).Err())
	host, port, _ := strings.Cut(to, ":")
	for {
		keys, err := src.ClusterGetKeysInSlot(ctx, int(slot), 100).Result()
		must(err)
		if len(keys) == 0 {
			break
		}
		args := []any{"MIGRATE", host, port, "", 0, 5000, "KEYS"}
		for _, k := range keys {
			args = append(args, k)
		}
		must(src.Do(ctx, args...).Err())
	}
	must(dst.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[to]).Err())
	must(src.Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[to]).Err())
	for _, a := range addrs {
		if a != from && a != to {
			must(clients[a].Do(ctx, "CLUSTER", "SETSLOT", slot, "NODE", ids[to]).Err())
		}
	}
	return from, to
}
