package sqlite

import (
	"strings"
	"testing"
)

// TestEventQueriesUseIndexes checks that the statements that read all of one
// event's reservations find them through the two partial indexes that
// together hold every row of an event (migration 00004), rather than
// reading the whole table: the table holds every event's reservations.
func TestEventQueriesUseIndexes(t *testing.T) {
	path, c := newDB(t)
	s := open(t, path, c)
	for name, query := range map[string]string{
		"stats":        sqlStats,
		"event exists": sqlEventExists,
		"queue counts": sqlQueueCounts,
	} {
		rows, err := s.rdb.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+query, 1, formatTime(start), formatTime(start))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		text := strings.Join(plan, "\n")
		t.Logf("%s:\n%s", name, text)
		for _, line := range plan {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "SCAN" && (f[1] == "reservations" || f[1] == "r") {
				t.Errorf("%s reads the whole reservations table: %q", name, line)
			}
		}
	}
}
