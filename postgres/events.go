package postgres

import (
	"context"
	"errors"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ticketrush/ticketrush"
)

// insertEvent inserts an event and its queue row in one statement; every
// event has a queue row, so a room added later finds it.
const insertEvent = `
WITH ev AS (
	INSERT INTO events (name, ticket_quantity, capacity, hold_seconds, max_per_visitor,
		sale_starts_at, created_at, updated_at, max_per_order, hidden, waiting_room)
	SELECT $1, $2, $2, $3, $4, $5, $6, $6, $7, $8, $9
	WHERE NOT $10 OR NOT EXISTS (SELECT 1 FROM events)
	RETURNING id
), q AS (
	INSERT INTO queues (event_id) SELECT id FROM ev
)
SELECT id FROM ev`

// CreateEvent creates an event with Capacity = TicketQuantity.
func (s *Store) CreateEvent(ctx context.Context, ne ticketrush.NewEvent) (*ticketrush.Event, error) {
	e, err := s.createEvent(ctx, s.pool, ne, false)
	if err != nil {
		return nil, s.fail("create event", err)
	}
	return e, nil
}

// seedLock is the advisory lock under which CreateFirstEvent looks for
// events, so several processes starting on one empty database seed once.
var seedLock = func() int64 {
	h := fnv.New64a()
	h.Write([]byte("ticketrush seed"))
	return int64(h.Sum64())
}()

// CreateFirstEvent creates ne only when the database has no event at all,
// and returns nil (no error) when it already has one. Several processes
// calling it at once on an empty database create one event: a transaction
// advisory lock serializes them, and each looks for events only once it
// holds the lock.
func (s *Store) CreateFirstEvent(ctx context.Context, ne ticketrush.NewEvent) (*ticketrush.Event, error) {
	if err := ne.Validate(); err != nil {
		return nil, err
	}
	var e *ticketrush.Event
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", seedLock); err != nil {
			return err
		}
		var err error
		e, err = s.createEvent(ctx, tx, ne, true)
		if errors.Is(err, pgx.ErrNoRows) {
			e, err = nil, nil
		}
		return err
	})
	if err != nil {
		return nil, s.fail("create first event", err)
	}
	return e, nil
}

// querier is a pool, a connection or a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// createEvent inserts ne; with onlyFirst it inserts nothing, and returns
// pgx.ErrNoRows, when an event exists.
func (s *Store) createEvent(ctx context.Context, q querier, ne ticketrush.NewEvent, onlyFirst bool) (*ticketrush.Event, error) {
	if err := ne.Validate(); err != nil {
		return nil, err
	}
	now := s.now()
	e := &ticketrush.Event{
		Name:           ne.Name,
		TicketQuantity: ne.TicketQuantity,
		Capacity:       ne.TicketQuantity,
		HoldSeconds:    ne.HoldSeconds,
		MaxPerVisitor:  ne.MaxPerVisitor,
		MaxPerOrder:    ne.OrderLimit(),
		Hidden:         ne.Hidden,
		WaitingRoom:    normalizeRoom(ne.WaitingRoom),
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	if ne.SaleStartsAt != nil {
		t := ne.SaleStartsAt.UTC().Truncate(time.Microsecond)
		e.SaleStartsAt = &t
	}
	room, err := encodeRoom(e.WaitingRoom)
	if err != nil {
		return nil, err
	}
	err = q.QueryRow(ctx, insertEvent, e.Name, e.TicketQuantity, e.HoldSeconds,
		e.MaxPerVisitor, e.SaleStartsAt, now, e.MaxPerOrder, e.Hidden, room, onlyFirst).Scan(&e.ID)
	if err != nil {
		return nil, err
	}
	return e, nil
}

const selectEvents = `SELECT ` + eventColumns + ` FROM events ORDER BY created_at DESC, id DESC`

// Events returns every event, newest first, hidden ones too.
func (s *Store) Events(ctx context.Context) ([]*ticketrush.Event, error) {
	rows, err := s.pool.Query(ctx, selectEvents)
	if err != nil {
		return nil, s.fail("events", err)
	}
	defer rows.Close()
	events := []*ticketrush.Event{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, s.fail("events", err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, s.fail("events", err)
	}
	return events, nil
}

const selectEvent = `SELECT ` + eventColumns + ` FROM events WHERE id = $1`

// Event returns one event.
func (s *Store) Event(ctx context.Context, id int64) (*ticketrush.Event, error) {
	e, err := scanEvent(s.pool.QueryRow(ctx, selectEvent, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errEventNotFound()
	}
	if err != nil {
		return nil, s.fail("event", err)
	}
	return e, nil
}

// selectStats reads the event and its reservations in one statement, so
// the counts come from one snapshot and add up.
const selectStats = `
SELECT e.capacity, e.ticket_quantity,
	coalesce(sum(r.amount) FILTER (WHERE r.status = 'reserved'), 0)::bigint,
	coalesce(sum(r.amount) FILTER (WHERE r.status = 'purchased'), 0)::bigint,
	coalesce(sum(r.amount) FILTER (WHERE r.status = 'expired'), 0)::bigint,
	coalesce(sum(r.amount) FILTER (WHERE r.status = 'cancelled'), 0)::bigint
FROM events e
LEFT JOIN reservations r ON r.event_id = e.id
WHERE e.id = $1
GROUP BY e.id`

// Stats counts the event's tickets by state.
func (s *Store) Stats(ctx context.Context, eventID int64) (*ticketrush.Stats, error) {
	st := &ticketrush.Stats{EventID: eventID}
	err := s.pool.QueryRow(ctx, selectStats, eventID).Scan(&st.Capacity, &st.Available,
		&st.Held, &st.Purchased, &st.Expired, &st.Cancelled)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errEventNotFound()
	}
	if err != nil {
		return nil, s.fail("stats", err)
	}
	return st, nil
}

func errEventNotFound() error {
	return ticketrush.ErrEventNotFound()
}
