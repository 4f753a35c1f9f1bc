package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/ticketrush/ticketrush"
)

// TestBatchLookupsStayIndexed: the statements with which group commit (of
// reserves and of queue joins) reads per-visitor state keep costing a few
// index pages per visitor however many rows the event has, under the plan
// PostgreSQL caches for pgx's prepared statements. The worst case is
// forced: a generic plan made while the event had few rows, then used once
// it has many. Before the lookups were LATERAL, the per-visitor totals'
// generic plan bound only the event in the index and filtered the
// visitors, reading every one of the event's reservations per batch: the
// capped event's rate fell as the table grew. The joins' lookup did the
// same with queue entries (770 pages for 3 visitors here; joins/s fell to
// 0.4x reserves/s in the first seconds of a rush).
func TestBatchLookupsStayIndexed(t *testing.T) {
	clock := &hardClock{now: time.Date(2025, 11, 18, 8, 0, 0, 0, time.UTC)}
	s, _ := openInternal(t, clock.Now, Options{})
	ctx := context.Background()
	ev, err := s.CreateEvent(ctx, ticketrush.NewEvent{Name: "capped", TicketQuantity: 1000, HoldSeconds: 600, MaxPerVisitor: 4})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Release()
	c := conn.Conn()
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := c.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("%s: %v", strings.SplitN(strings.TrimSpace(sql), "\n", 2)[0], err)
		}
	}
	exec(`UPDATE events SET waiting_room = '{}' WHERE id = $1`, ev.ID)
	exec(`SET plan_cache_mode = force_generic_plan`)
	defer exec(`RESET plan_cache_mode`)

	visitors := []string{uuid.NewString(), uuid.NewString(), uuid.NewString()}
	events := []int64{ev.ID, ev.ID, ev.ID}
	stmts := []struct {
		name, sql string
		args      []any
		literal   string
	}{
		{"totals", visitorTotalsMany, []any{events, visitors, clock.Now()}, "'%[1]s'::bigint[], '%[2]s'::text[], '%[3]s'::timestamptz"},
		{"entries", roomEntriesMany, []any{events, visitors}, "'%[1]s'::bigint[], '%[2]s'::text[]"},
		{"keys", findIdempotentMany, []any{visitors, visitors}, "'%[2]s'::text[], '%[2]s'::text[]"},
		{"joins", latestEntries, []any{ev.ID, visitors}, "('%[1]s'::bigint[])[1], '%[2]s'::text[]"},
	}
	// The plan is made when the sale has just begun: the event has a few
	// hundred reservations, and the statistics say so.
	fill := func(from, to int) {
		exec(`INSERT INTO reservations (user_uid, event_id, status, amount, expires_at, idempotency_key, created_at, updated_at)
			SELECT md5(i::text), $1, 'reserved', 1, $2, md5(i::text), $3, $3 FROM generate_series($4::int, $5::int) AS i`,
			ev.ID, clock.Now().Add(time.Hour), clock.Now(), from, to)
		exec(`INSERT INTO queue_entries (event_id, visitor, attempt, state, joined_at)
			SELECT $1, md5(i::text), 1, 'waiting', $2 FROM generate_series($3::int, $4::int) AS i`, ev.ID, clock.Now(), from, to)
	}
	fill(1, 300)
	exec(`ANALYZE reservations`)
	exec(`ANALYZE queue_entries`)
	for _, st := range stmts {
		if _, err := c.Prepare(ctx, st.name, st.sql); err != nil {
			t.Fatalf("prepare %s: %v", st.name, err)
		}
		// The first execution makes the generic plan, on the empty table.
		rows, err := c.Query(ctx, st.name, st.args...)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
	}

	const n = 50000
	fill(301, n)
	// One of the visitors asked about has rows, so the lookups find
	// something.
	exec(`INSERT INTO reservations (user_uid, event_id, status, amount, expires_at, idempotency_key, created_at, updated_at)
		VALUES ($1, $2, 'reserved', 2, $3, $1, $4, $4)`, visitors[0], ev.ID, clock.Now().Add(time.Hour), clock.Now())

	array := func(v []string) string { return "{" + strings.Join(v, ",") + "}" }
	eventsLit := fmt.Sprintf("{%d,%d,%d}", ev.ID, ev.ID, ev.ID)
	for _, st := range stmts {
		args := fmt.Sprintf(st.literal, eventsLit, array(visitors), clock.Now().Format(time.RFC3339Nano))
		var plan []struct {
			Plan struct {
				Hit  int64 `json:"Shared Hit Blocks"`
				Read int64 `json:"Shared Read Blocks"`
			}
		}
		var out []byte
		err := c.QueryRow(ctx, fmt.Sprintf("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE %s(%s)", st.name, args)).Scan(&out)
		if err != nil {
			t.Fatalf("explain %s: %v", st.name, err)
		}
		if err := json.Unmarshal(out, &plan); err != nil || len(plan) != 1 {
			t.Fatalf("explain %s: %v: %s", st.name, err, out)
		}
		// A few pages per visitor; scanning the event's rows reads
		// hundreds.
		if pages := plan[0].Plan.Hit + plan[0].Plan.Read; pages > 20*int64(len(visitors)) {
			t.Errorf("%s read %d pages for %d visitors among %d rows: not an index descent per visitor\n%s",
				st.name, pages, len(visitors), n, out)
		}
	}
}
