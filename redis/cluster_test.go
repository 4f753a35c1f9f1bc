package redis_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/redis"
	"github.com/ticketrush/ticketrush/storetest"
)

// startCluster starts three redis-server primaries with cluster mode on
// loopback ports, joins them with redis-cli --cluster create, waits until the
// cluster serves every slot, and stops them when the test ends. It returns
// their addresses.
func startCluster(t *testing.T) []string {
	t.Helper()
	server, err1 := exec.LookPath("redis-server")
	cli, err2 := exec.LookPath("redis-cli")
	if err1 != nil || err2 != nil {
		if os.Getenv("TICKETRUSH_REQUIRE_SERVERS") == "1" {
			t.Fatalf("redis-server and redis-cli are needed for the cluster test and TICKETRUSH_REQUIRE_SERVERS=1")
		}
		t.Skip("redis-server or redis-cli is not on PATH; set TICKETRUSH_REQUIRE_SERVERS=1 to fail instead")
	}
	dir := t.TempDir()
	var addrs []string
	for range 3 {
		port := freeClusterPort(t)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(server,
			"--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--cluster-enabled", "yes",
			"--cluster-config-file", filepath.Join(dir, fmt.Sprintf("nodes-%d.conf", port)),
			"--cluster-node-timeout", "5000",
			"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir,
			"--logfile", filepath.Join(dir, fmt.Sprintf("redis-%d.log", port)))
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting redis-server: %v", err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
		})
		addrs = append(addrs, addr)
	}
	for _, addr := range addrs {
		// Plain TCP first: the client would log every refused dial.
		waitFor(t, addr, func(*goredis.Client) bool {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				conn.Close()
			}
			return err == nil
		})
		waitFor(t, addr, func(c *goredis.Client) bool { return c.Ping(t.Context()).Err() == nil })
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(t.Context(), cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, addr := range addrs {
		waitFor(t, addr, func(c *goredis.Client) bool {
			info, err := c.ClusterInfo(t.Context()).Result()
			return err == nil && strings.Contains(info, "cluster_state:ok")
		})
	}
	return addrs
}

// freeClusterPort returns a free loopback port whose cluster bus port (the
// port + 10000) is free too.
func freeClusterPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if port+10000 > 65535 {
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		if err != nil {
			continue
		}
		bus.Close()
		return port
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}

// waitFor polls one node until ready says so, for up to 15 s.
func waitFor(t *testing.T, addr string, ready func(*goredis.Client) bool) {
	t.Helper()
	c := goredis.NewClient(&goredis.Options{Addr: addr, MaxRetries: -1})
	defer c.Close()
	deadline := time.Now().Add(15 * time.Second)
	for !ready(c) {
		if time.Now().After(deadline) {
			t.Fatalf("redis node %s not ready in time", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCluster runs the whole conformance suite, and the cross-event
// idempotency race, through a cluster client on a local three-primary
// Redis Cluster, and checks that events spread over the primaries.
func TestCluster(t *testing.T) {
	addrs := startCluster(t)
	open := func(t testing.TB, prefix string, clock ticketrush.Clock) *redis.Store {
		t.Helper()
		s, err := redis.OpenCluster(context.Background(), addrs, redis.Options{Now: clock, Prefix: prefix})
		if err != nil {
			t.Fatalf("OpenCluster: %v", err)
		}
		return s
	}
	// The cluster is thrown away with the test, so no key cleanup is needed.
	newStore := func(t *testing.T, clock ticketrush.Clock) func() ticketrush.Store {
		prefix := uniquePrefix()
		s := open(t, prefix, clock)
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		s.Close()
		return func() ticketrush.Store { return open(t, prefix, clock) }
	}

	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, newStore)
	})

	t.Run("URL", func(t *testing.T) {
		// Open with Options.Cluster takes a seed node's URL.
		s, err := redis.Open(t.Context(), "redis://"+addrs[0], redis.Options{Cluster: true, Prefix: uniquePrefix()})
		if err != nil {
			t.Fatalf("Open in cluster mode: %v", err)
		}
		defer s.Close()
		if err := s.Ping(t.Context()); err != nil {
			t.Error(err)
		}
		if _, err := s.AOFEnabled(t.Context()); err != nil {
			t.Errorf("AOFEnabled: %v", err)
		}
		// A cluster node opened as a single Redis is refused at once.
		if _, err := redis.Open(t.Context(), "redis://"+addrs[0]+"/0", redis.Options{}); err == nil {
			t.Error("Open accepted a cluster node as a single Redis")
		}
	})

	t.Run("EventsSpreadOverShards", func(t *testing.T) {
		prefix := uniquePrefix()
		s := open(t, prefix, nil)
		defer s.Close()
		const n = 12
		for range n {
			ev, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: 10, HoldSeconds: 60})
			if err != nil {
				t.Fatal(err)
			}
			reqs := []ticketrush.ReserveRequest{
				{EventID: ev.ID, Amount: 2, VisitorToken: "0b9d1c1e-8f55-4bd4-9b8e-2f1a1d0c0a01", IdempotencyKey: "k" + strconv.FormatInt(ev.ID, 10)},
				{EventID: ev.ID, Amount: 3, VisitorToken: "0b9d1c1e-8f55-4bd4-9b8e-2f1a1d0c0a02"},
			}
			res, err := s.ReserveBatch(t.Context(), ev.ID, reqs)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range res {
				if r.Err != nil {
					t.Fatal(r.Err)
				}
			}
		}
		// Count each primary's event hashes: every one of an event's keys
		// must be on the node that has its hash, and events must spread.
		perNode := map[string]int{}
		for _, addr := range addrs {
			c := goredis.NewClient(&goredis.Options{Addr: addr})
			keys, err := c.Keys(t.Context(), prefix+":{e:*").Result()
			c.Close()
			if err != nil {
				t.Fatal(err)
			}
			tags := map[string]bool{}
			for _, k := range keys {
				tags[k[:strings.Index(k, "}")+1]] = true
			}
			perNode[addr] = len(tags)
			for tag := range tags {
				for _, suffix := range []string{"", ":res", ":holds", ":idem"} {
					if !contains(keys, tag+suffix) {
						t.Errorf("node %s has event %s but not its key %q", addr, tag, tag+suffix)
					}
				}
			}
		}
		total, used := 0, 0
		for _, k := range perNode {
			total += k
			if k > 0 {
				used++
			}
		}
		if total != n {
			t.Errorf("found %d events on the primaries, want %d: %v", total, n, perNode)
		}
		if used < 2 {
			t.Errorf("all events on one primary: %v", perNode)
		}
		t.Logf("events per primary: %v", perNode)
	})

	t.Run("IdempotencyAcrossEvents", func(t *testing.T) {
		s := open(t, uniquePrefix(), nil)
		defer s.Close()
		raceKeyAcrossEvents(t, s)
	})

	t.Run("ResentScripts", func(t *testing.T) {
		resentScripts(t, addrs)
	})

	t.Run("RunRecords", func(t *testing.T) {
		runRecords(t, addrs)
	})

	t.Run("SlotMigration", func(t *testing.T) {
		slotMigration(t, addrs)
	})

	t.Run("RefusedKeyIsFree", func(t *testing.T) {
		s := open(t, uniquePrefix(), nil)
		defer s.Close()
		refusedKeyIsFree(t, s)
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
