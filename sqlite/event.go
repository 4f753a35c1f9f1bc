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
		hidden, closed       int64
		admit, maxActive     sql.NullInt64
		pass, bits, paused   sql.NullInt64
		prequeueOpens        sql.NullString
		err                  error
	)
	if err := row.Scan(&e.ID, &e.Name, &e.TicketQuantity, &e.Capacity, &e.HoldSeconds,
		&e.MaxPerVisitor, &saleStarts, &createdAt, &updatedAt,
		&e.MaxPerOrder, &hidden, &closed,
		&admit, &maxActive, &pass, &prequeueOpens, &bits, &paused); err != nil {
		return nil, err
	}
	e.Hidden = hidden != 0
	e.SaleClosed = closed != 0
	if e.SaleStartsAt, err = parseNullTime(saleStarts); err != nil {
		return nil, err
	}
	if e.CreatedAt, err = parseTime(createdAt); err != nil {
		return nil, err
	}
	if e.UpdatedAt, err = parseTime(updatedAt); err != nil {
		return nil, err
	}
	if admit.Valid {
		w := &ticketrush.WaitingRoom{
			AdmitPerMinute: admit.Int64,
			MaxActive:      maxActive.Int64,
			PassSeconds:    pass.Int64,
			ChallengeBits:  bits.Int64,
			Paused:         paused.Int64 != 0,
		}
		if w.PrequeueOpensAt, err = parseNullTime(prequeueOpens); err != nil {
			return nil, err
		}
		e.WaitingRoom = w
	}
	return &e, nil
}

// parseNullTime parses a nullable stored time.
func parseNullTime(s sql.NullString) (*time.Time, error) {
	if !s.Valid {
		return nil, nil
	}
	t, err := parseTime(s.String)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// nullTime is the stored form of an optional time.
func nullTime(t *time.Time) sql.NullString {
	if t == nil {
		return sql.NullString{}
	}
	return sql.NullString{String: formatTime(*t), Valid: true}
}

// truncTime is t in the stored precision, nil for nil.
func truncTime(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	c := t.UTC().Truncate(time.Microsecond)
	return &c
}

// copyRoom returns a copy of w in the stored precision, nil for nil.
func copyRoom(w *ticketrush.WaitingRoom) *ticketrush.WaitingRoom {
	if w == nil {
		return nil
	}
	c := *w
	c.PrequeueOpensAt = truncTime(w.PrequeueOpensAt)
	return &c
}

// boolInt is the stored form of a flag.
func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

func errEventNotFound() error {
	return ticketrush.ErrEventNotFound()
}

// CreateEvent creates an event with Capacity = TicketQuantity.
func (s *Store) CreateEvent(ctx context.Context, ne ticketrush.NewEvent) (*ticketrush.Event, error) {
	return s.createEvent(ctx, ne, false)
}

// CreateFirstEvent creates the event only when the database has none, and
// returns nil (and no error) when it has one. The check and the insert are
// one statement of one write transaction, so several nodes starting at once
// on an empty database create it once.
func (s *Store) CreateFirstEvent(ctx context.Context, ne ticketrush.NewEvent) (*ticketrush.Event, error) {
	return s.createEvent(ctx, ne, true)
}

func (s *Store) createEvent(ctx context.Context, ne ticketrush.NewEvent, first bool) (*ticketrush.Event, error) {
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
		SaleStartsAt:   truncTime(ne.SaleStartsAt),
		MaxPerOrder:    ne.OrderLimit(),
		Hidden:         ne.Hidden,
		WaitingRoom:    copyRoom(ne.WaitingRoom),
		CreatedAt:      now,
		UpdatedAt:      now,
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	insert := st.insertEvent
	if first {
		insert = st.insertFirstEvent
	}
	res, err := tx.StmtContext(ctx, insert).ExecContext(ctx, e.Name, e.TicketQuantity, e.Capacity,
		e.HoldSeconds, e.MaxPerVisitor, nullTime(e.SaleStartsAt), formatTime(now), formatTime(now),
		e.MaxPerOrder, boolInt(e.Hidden))
	if err != nil {
		return nil, dbError(ctx, err)
	}
	if first {
		n, err := res.RowsAffected()
		if err != nil {
			return nil, dbError(ctx, err)
		}
		if n == 0 {
			return nil, nil
		}
	}
	if e.ID, err = res.LastInsertId(); err != nil {
		return nil, dbError(ctx, err)
	}
	if e.WaitingRoom != nil {
		if err := putRoom(ctx, tx, e.ID, e.WaitingRoom); err != nil {
			return nil, dbError(ctx, err)
		}
	}
	if err := s.commit(ctx, tx); err != nil {
		return nil, err
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
