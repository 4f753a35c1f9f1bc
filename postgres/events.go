package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/ticketrush/ticketrush"
)

const insertEvent = `
INSERT INTO events (name, ticket_quantity, capacity, hold_seconds, max_per_visitor,
	sale_starts_at, created_at, updated_at)
VALUES ($1, $2, $2, $3, $4, $5, $6, $6)
RETURNING id`

// CreateEvent creates an event with Capacity = TicketQuantity.
func (s *Store) CreateEvent(ctx context.Context, ne ticketrush.NewEvent) (*ticketrush.Event, error) {
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
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	if ne.SaleStartsAt != nil {
		t := ne.SaleStartsAt.UTC().Truncate(time.Microsecond)
		e.SaleStartsAt = &t
	}
	err := s.pool.QueryRow(ctx, insertEvent, e.Name, e.TicketQuantity, e.HoldSeconds,
		e.MaxPerVisitor, e.SaleStartsAt, now).Scan(&e.ID)
	if err != nil {
		return nil, s.fail("create event", err)
	}
	return e, nil
}

const selectEvents = `SELECT ` + eventColumns + ` FROM events ORDER BY created_at DESC, id DESC`

// Events returns every event, newest first.
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
