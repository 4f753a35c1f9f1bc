package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	fairrush "github.com/ticketrush/ticketrush/rush"
)

// TestFairRehearsal runs the fairness rehearsal (ticketrush rush --humans
// --bots) end to end against real serve processes: one on SQLite, and three
// sharing one PostgreSQL database or one Redis, where admission must stay
// exact across nodes. The numbers are small so each run takes seconds; the
// checks are the report's own: no overselling, every purchase counted, no
// unexpected answer, bots win no more orders than their admissions allow,
// admission follows position, and no 60 s window admits more than
// admit_per_minute.
func TestFairRehearsal(t *testing.T) {
	cases := []struct {
		b     backend
		nodes int
	}{
		{sqliteBackend, 1},
		{postgresBackend, 3},
		{redisBackend, 3},
	}
	for _, tc := range cases {
		t.Run(tc.b.name, func(t *testing.T) {
			db, _ := tc.b.newDB(t)
			var urls []string
			for range tc.nodes {
				// The rehearsal gives each simulated client an address of
				// its own in X-Forwarded-For, as a reverse proxy would, so
				// the join quota counts per client, not per test process.
				p := startServe(t, db, "--trusted-proxies", "127.0.0.1/32",
					"--pass-keys", "e2e:fairness-rehearsal-key-0123456789")
				urls = append(urls, p.URL)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			rep, err := fairrush.RunFair(ctx, fairrush.FairConfig{
				URLs:          urls,
				AdminToken:    adminToken,
				Humans:        300,
				Bots:          5,
				Tickets:       80,
				Window:        6 * time.Second,
				SaleAfter:     2 * time.Second,
				ChallengeBits: 6,
				// As at the rehearsal's defaults (400 tickets at 600 a
				// minute), admission takes well longer than the few
				// seconds over which the pre-queue's first polls are
				// spread: 40 orders' worth at 3 a second.
				AdmitPerMinute: 180,
				PassSeconds:    30,
				PhaseTimeout:   90 * time.Second,
				Seed:           uint64(time.Now().UnixNano()) | 1,
			})
			if err != nil {
				t.Fatal(err)
			}
			var text strings.Builder
			if err := rep.WriteText(&text); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s", text.String())
			if !rep.OK {
				t.Fatalf("fairness checks failed:\n%s", text.String())
			}
			r := rep.Room
			if r.Purchased == 0 || r.Groups[fairrush.GroupHumans].Orders == 0 {
				t.Errorf("nobody bought through the waiting room: %+v", r.Groups)
			}
			if r.Groups[fairrush.GroupBots].Entries == 0 || r.Solves == 0 {
				t.Errorf("the bots never joined: %d entries, %d challenges solved", r.Groups[fairrush.GroupBots].Entries, r.Solves)
			}
			if rep.NoRoom == nil || rep.NoRoom.Purchased == 0 {
				t.Errorf("the phase without a waiting room sold nothing")
			}
		})
	}
}
