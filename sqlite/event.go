package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/ticketrush/ticketrush"
)

// scanner is a *sql.Row or *sql.Rows.
type scanner interface {
	Scan(dest ...any) error
}

func scanEvent(row scanner) (*ticketrush.Event, error) {
	var (
		e                    ticketrush.Event
		saleStarts           sql.NullString
		createdAt, updatedAt string
		err                  error
	)
	if err := row.Scan(&e.ID, &e.Name, &e.TicketQuantity, &e.Capacity, &e.HoldSeconds,
		&e.MaxPerVisitor, &saleStarts, &createdAt, &updatedAt); err != nil {
		return nil, err
	}
	if saleStarts.Valid {
		t, err := parseTime(saleStarts.String)
		if err != nil {
			return nil, err
		}
		e.SaleStartsAt = &t
	}
	if e.CreatedAt, err = parseTime(createdAt); err != nil {
		return nil, err
	}
	if e.UpdatedAt, err = parseTime(updatedAt); err != nil {
		return nil, err
	}
	return &e, nil
}

func errEventNotFound() error {
	return ticketrush.ErrEventNotFound()
}

// CreateEvent creates an event with Capacity = TicketQuantity.
func (s *Store) CreateEvent(ctx context.Context, ne ticketrush.NewEvent) (*ticketrush.Event, error) {
	if err := ne.Validate(); err != nil {
		return nil, err
	}
	st, err := s.statements(ctx)
	if err != nil {
		return nil, err
	}
	now := s.clock()
	e := &ticketrush.Event{
		Name:           ne.Name,
		TicketQuantity: ne.TicketQuantity,
		Capacity:       ne.TicketQuantity,
		HoldSeconds:    ne.HoldSeconds,
		MaxPerVisitor:  ne.MaxPerVisitor,
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	var saleStarts sql.NullString
	if ne.SaleStartsAt != nil {
		t := ne.SaleStartsAt.UTC().Truncate(time.Microsecond)
		e.SaleStartsAt = &t
		saleStarts = sql.NullString{String: formatTime(t), Valid: true}
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	res, err := tx.StmtContext(ctx, st.insertEvent).ExecContext(ctx, e.Name, e.TicketQuantity, e.Capacity,
		e.HoldSeconds, e.MaxPerVisitor, saleStarts, formatTime(now), formatTime(now))
	if err != nil {
		return nil, dbError(ctx, err)
	}
	if e.ID, err = res.LastInsertId(); err != nil {
		return nil, dbError(ctx, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, dbError(ctx, err)
	}
	return e, nil
}

// Events returns every event, newest first.
func (s *Store) Events(ctx context.Context) ([]*ticketrush.Event, error) {
	st, err := s.statements(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := st.readEvents.QueryContext(ctx)
	if err != nil {
		return nil, dbError(ctx, err)
	}
	defer rows.Close()
	events := []*ticketrush.Event{}
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, dbError(ctx, err)
		}
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(ctx, err)
	}
	return events, nil
}

// Event returns one event, or EEventNotFound.
func (s *Store) Event(ctx context.Context, id int64) (*ticketrush.Event, error) {
	st, err := s.statements(ctx)
	if err != nil {
		return nil, err
	}
	e, err := scanEvent(st.readEvent.QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errEventNotFound()
	}
	if err != nil {
		return nil, dbError(ctx, err)
	}
	return e, nil
}

// Stats counts the event's tickets by state, or returns EEventNotFound.
func (s *Store) Stats(ctx context.Context, eventID int64) (*ticketrush.Stats, error) {
	st, err := s.statements(ctx)
	if err != nil {
		return nil, err
	}
	stats := &ticketrush.Stats{EventID: eventID}
	err = st.readStats.QueryRowContext(ctx, eventID).Scan(&stats.Capacity, &stats.Available,
		&stats.Held, &stats.Purchased, &stats.Expired, &stats.Cancelled)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errEventNotFound()
	}
	if err != nil {
		return nil, dbError(ctx, err)
	}
	return stats, nil
}
