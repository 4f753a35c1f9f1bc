package sqlite

import (
	"context"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/pressly/goose/v3"
	"github.com/ticketrush/ticketrush"
)

// TestUpgradeKeepsEvents migrates a database made by the first migration,
// with an event in it, to the latest: the event keeps its data and gets
// the safe defaults (max_per_order 10, shown, on sale, no waiting room).
func TestUpgradeKeepsEvents(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ticketrush.db")
	c := &clock{now: start}
	s := open(t, path, c)
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		t.Fatal(err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.wdb, dir, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	ts := formatTime(start)
	if _, err := s.wdb.Exec(`INSERT INTO events (name, ticket_quantity, capacity, hold_seconds,
		max_per_visitor, created_at, updated_at) VALUES ('Örnek Etkinlik', 2000, 2000, 300, 0, ?, ?)`, ts, ts); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	e, err := s.Event(t.Context(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "Örnek Etkinlik" || e.TicketQuantity != 2000 || e.MaxPerOrder != ticketrush.DefaultMaxPerOrder ||
		e.Hidden || e.SaleClosed || e.WaitingRoom != nil || !e.CreatedAt.Equal(start.Truncate(time.Microsecond)) {
		t.Fatalf("after the upgrade: %+v", e)
	}
	// The default applies: one reserve takes at most 10.
	_, err = s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: 1, Amount: 11, VisitorToken: uuid.NewString()})
	if ticketrush.ErrorCode(err) != ticketrush.EOrderLimit {
		t.Fatalf("reserve of 11 after the upgrade: %v", err)
	}
}

// TestStoredQueueTimes checks that the queue's times are stored in the
// fixed-width UTC form, so that string order is time order in its indexes.
func TestStoredQueueTimes(t *testing.T) {
	path, c := newDB(t)
	s := open(t, path, c)
	opens := time.Date(2025, 11, 18, 10, 0, 0, 0, time.FixedZone("TRT", 3*3600))
	e := roomEvent(t, s, 10, start, &opens, ticketrush.WaitingRoom{AdmitPerMinute: 10, PassSeconds: 90})
	v := uuid.NewString()
	join(t, s, e.ID, v)
	advance(t, s, e.ID)
	var pre, joined, admitted, pass string
	err := s.rdb.QueryRow(`SELECT w.prequeue_opens_at, q.joined_at, q.admitted_at, q.pass_expires_at
		FROM queue_entries q JOIN waiting_rooms w ON w.event_id = q.event_id WHERE q.visitor = ?`, v).
		Scan(&pre, &joined, &admitted, &pass)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ got, want string }{
		{pre, "2025-11-18T07:00:00.000000Z"},
		{joined, "2025-11-18T07:54:23.123456Z"},
		{admitted, "2025-11-18T07:54:23.123456Z"},
		{pass, "2025-11-18T07:55:53.123456Z"},
	} {
		if c.got != c.want {
			t.Errorf("stored %q, want %q", c.got, c.want)
		}
	}
}
