package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/ticketrush/ticketrush"
)

func scanReservation(row scanner) (*ticketrush.Reservation, error) {
	var (
		r                               ticketrush.Reservation
		expiresAt, createdAt, updatedAt string
		err                             error
	)
	if err := row.Scan(&r.ID, &r.EventID, &r.UserUID, &r.Status, &r.Amount,
		&expiresAt, &createdAt, &updatedAt, &r.IdempotencyKey); err != nil {
		return nil, err
	}
	if r.ExpiresAt, err = parseTime(expiresAt); err != nil {
		return nil, err
	}
	if r.CreatedAt, err = parseTime(createdAt); err != nil {
		return nil, err
	}
	if r.UpdatedAt, err = parseTime(updatedAt); err != nil {
		return nil, err
	}
	return &r, nil
}

func errReservationNotFound() error {
	return ticketrush.ErrReservationNotFound()
}

// Reservation returns a reservation of the given visitor as stored: a hold
// past its ExpiresAt that no one has released yet still reads as reserved.
func (s *Store) Reservation(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	st, err := s.statements(ctx)
	if err != nil {
		return nil, err
	}
	r, err := scanReservation(st.readReservation.QueryRowContext(ctx, id, strings.ToLower(visitor)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errReservationNotFound()
	}
	if err != nil {
		return nil, dbError(ctx, err)
	}
	return r, nil
}

// Purchase turns the visitor's unexpired hold into a sale.
func (s *Store) Purchase(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	return s.settle(ctx, id, visitor, ticketrush.StatusPurchased)
}

// Cancel puts the visitor's hold back on sale at once.
func (s *Store) Cancel(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	return s.settle(ctx, id, visitor, ticketrush.StatusCancelled)
}

// settle moves a hold to status to (purchased or cancelled) in one write
// transaction. A hold found past its ExpiresAt is released as expired
// instead, and committed, before EExpired is returned.
func (s *Store) settle(ctx context.Context, id int64, visitor, to string) (*ticketrush.Reservation, error) {
	st, err := s.statements(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()

	now := s.clock()
	r, err := scanReservation(tx.StmtContext(ctx, st.reservation).QueryRowContext(ctx, id, strings.ToLower(visitor)))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errReservationNotFound()
	}
	if err != nil {
		return nil, dbError(ctx, err)
	}
	switch r.Status {
	case ticketrush.StatusPurchased:
		return nil, ticketrush.ErrAlreadyPurchased()
	case ticketrush.StatusCancelled:
		if to == ticketrush.StatusCancelled {
			return r, nil
		}
		return nil, ticketrush.ErrCancelled()
	case ticketrush.StatusExpired:
		return nil, errExpired()
	}

	expired := !r.ExpiresAt.After(now)
	status := to
	if expired {
		status = ticketrush.StatusExpired
	}
	if _, err := tx.StmtContext(ctx, st.setStatus).ExecContext(ctx, status, formatTime(now), r.ID); err != nil {
		return nil, dbError(ctx, err)
	}
	if status != ticketrush.StatusPurchased {
		if _, err := tx.StmtContext(ctx, st.addStock).ExecContext(ctx, r.Amount, formatTime(now), r.EventID); err != nil {
			return nil, dbError(ctx, err)
		}
	}
	if err := s.commit(ctx, tx); err != nil {
		return nil, err
	}
	if expired {
		return nil, errExpired()
	}
	r.Status = status
	r.UpdatedAt = now
	return r, nil
}

func errExpired() error {
	return ticketrush.ErrExpired()
}

// ReleaseExpired releases at most limit expired holds across all events.
// The single writer makes each release happen once: a second sweeper, in
// this process or another, waits for the write lock and then finds the
// holds no longer reserved.
func (s *Store) ReleaseExpired(ctx context.Context, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	st, err := s.statements(ctx)
	if err != nil {
		return 0, err
	}
	// Most sweeps find nothing; asking a reader first keeps them from
	// queueing for the write connection behind reserves.
	var any bool
	if err := st.readAnyExpired.QueryRowContext(ctx, formatTime(s.clock())).Scan(&any); err != nil {
		return 0, dbError(ctx, err)
	}
	if !any {
		return 0, nil
	}

	tx, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	now := formatTime(s.clock())
	rows, err := tx.StmtContext(ctx, st.releaseExpired).QueryContext(ctx, now, limit)
	if err != nil {
		return 0, dbError(ctx, err)
	}
	released := map[int64]int64{}
	n := 0
	for rows.Next() {
		var eventID, amount int64
		if err := rows.Scan(&eventID, &amount); err != nil {
			rows.Close()
			return 0, dbError(ctx, err)
		}
		released[eventID] += amount
		n++
	}
	if err := rows.Close(); err != nil {
		return 0, dbError(ctx, err)
	}
	if err := rows.Err(); err != nil {
		return 0, dbError(ctx, err)
	}
	addStock := tx.StmtContext(ctx, st.addStock)
	for eventID, amount := range released {
		if _, err := addStock.ExecContext(ctx, amount, now, eventID); err != nil {
			return 0, dbError(ctx, err)
		}
	}
	if n == 0 {
		return 0, nil
	}
	if err := s.commit(ctx, tx); err != nil {
		return 0, err
	}
	return n, nil
}
