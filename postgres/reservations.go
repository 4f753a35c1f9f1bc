package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/ticketrush/ticketrush"
)

const selectReservation = `SELECT ` + reservationColumns + `
FROM reservations WHERE id = $1 AND user_uid = $2`

// Reservation returns a reservation of the given visitor.
func (s *Store) Reservation(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	res, err := s.reservation(ctx, id, visitor)
	if err != nil {
		return nil, s.fail("reservation", err)
	}
	return res, nil
}

func (s *Store) reservation(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	res, err := scanReservation(s.pool.QueryRow(ctx, selectReservation, id, visitor))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ticketrush.ErrReservationNotFound()
	}
	return res, err
}

// purchase sells an unexpired hold in one statement that never touches the
// event row: a sale changes no stock.
const purchase = `
UPDATE reservations SET status = 'purchased', updated_at = $3
WHERE id = $1 AND user_uid = $2 AND status = 'reserved' AND expires_at > $3
RETURNING ` + reservationColumns

// lockHoldEvent locks the event row of hold $1 (of visitor $2). The
// statements that release a hold and restock its event reference it in
// their WHERE, so PostgreSQL takes the event row before the hold's row:
// the order a reserve takes them in. A hold row locked first, while its
// transaction queued for a hot event row, would be skipped by the reserves
// ahead (SKIP LOCKED), which would answer sold out with it releasable. If
// a reserve releases the hold meanwhile, the UPDATE re-reads the row after
// the wait and finds it no longer reserved.
const lockHoldEvent = `
	SELECT id FROM events
	WHERE id = (SELECT event_id FROM reservations WHERE id = $1 AND user_uid = $2)
	FOR UPDATE`

// expireOne releases one expired hold and gives its tickets back, in one
// statement that locks the event row, then the reservation row.
const expireOne = `
WITH ev AS (` + lockHoldEvent + `
), released AS (
	UPDATE reservations SET status = 'expired', updated_at = $3
	WHERE id = $1 AND user_uid = $2 AND status = 'reserved' AND expires_at <= $3
		AND event_id = (SELECT id FROM ev)
	RETURNING event_id, amount
)
UPDATE events SET ticket_quantity = events.ticket_quantity + released.amount, updated_at = $3
FROM released WHERE events.id = released.event_id`

// Purchase turns the visitor's unexpired hold into a sale.
func (s *Store) Purchase(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	res, err := s.purchase(ctx, id, visitor)
	if err != nil {
		return nil, s.fail("purchase", err)
	}
	return res, nil
}

func (s *Store) purchase(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	now := s.now()
	// Each pass either settles the hold or sees it change under it; a hold
	// changes state at most twice, so three passes always settle.
	for range 3 {
		var res *ticketrush.Reservation
		err := s.writeRow(ctx, func(row pgx.Row) (err error) {
			res, err = scanReservation(row)
			return err
		}, purchase, id, visitor, now)
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		res, err = s.reservation(ctx, id, visitor)
		if err != nil {
			return nil, err
		}
		switch res.Status {
		case ticketrush.StatusPurchased:
			return nil, ticketrush.ErrAlreadyPurchased()
		case ticketrush.StatusCancelled:
			return nil, ticketrush.ErrCancelled()
		case ticketrush.StatusExpired:
			return nil, errExpired()
		}
		if !res.ExpiresAt.After(now) {
			err := retry(ctx, func() error {
				return s.writeRow(ctx, nil, expireOne, id, visitor, now)
			})
			if err != nil {
				return nil, err
			}
			// Released here or by a concurrent sweep: expired either way.
			return nil, errExpired()
		}
	}
	return nil, fmt.Errorf("reservation %d kept changing", id)
}

// cancel releases a hold and gives its tickets back in one statement that
// locks the event row, then the reservation row. A hold already past its
// expiry is released as expired rather than cancelled.
const cancel = `
WITH ev AS (` + lockHoldEvent + `
), released AS (
	UPDATE reservations
	SET status = CASE WHEN expires_at > $3 THEN 'cancelled' ELSE 'expired' END, updated_at = $3
	WHERE id = $1 AND user_uid = $2 AND status = 'reserved'
		AND event_id = (SELECT id FROM ev)
	RETURNING ` + returningColumns + `
), restocked AS (
	UPDATE events SET ticket_quantity = events.ticket_quantity + released.amount, updated_at = $3
	FROM released WHERE events.id = released.event_id
)
SELECT ` + reservationColumns + ` FROM released`

// Cancel releases the visitor's hold at once.
func (s *Store) Cancel(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	res, err := s.cancel(ctx, id, visitor)
	if err != nil {
		return nil, s.fail("cancel", err)
	}
	return res, nil
}

func (s *Store) cancel(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	now := s.now()
	for range 3 {
		var res *ticketrush.Reservation
		err := retry(ctx, func() error {
			return s.writeRow(ctx, func(row pgx.Row) (err error) {
				res, err = scanReservation(row)
				return err
			}, cancel, id, visitor, now)
		})
		switch {
		case err == nil && res.Status == ticketrush.StatusExpired:
			return nil, errExpired()
		case err == nil:
			return res, nil
		case !errors.Is(err, pgx.ErrNoRows):
			return nil, err
		}
		res, err = s.reservation(ctx, id, visitor)
		if err != nil {
			return nil, err
		}
		switch res.Status {
		case ticketrush.StatusPurchased:
			return nil, ticketrush.ErrAlreadyPurchased()
		case ticketrush.StatusCancelled:
			return res, nil
		case ticketrush.StatusExpired:
			return nil, errExpired()
		}
	}
	return nil, fmt.Errorf("reservation %d kept changing", id)
}

// writeRow runs one write statement in its own transaction and hands its
// row to scan (nil for a statement that returns none). A failure to get a
// connection sent nothing; a failure after the statement went out without
// an answer from the server leaves it in doubt (see afterCommitSent).
func (s *Store) writeRow(ctx context.Context, scan func(pgx.Row) error, sql string, args ...any) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if err := ctx.Err(); err != nil {
		return err // pgx would send nothing
	}
	if scan == nil {
		_, err = conn.Exec(ctx, sql, args...)
	} else {
		err = scan(conn.QueryRow(ctx, sql, args...))
	}
	if err == nil || errors.Is(err, pgx.ErrNoRows) || !conn.Conn().IsClosed() {
		// Done, or answered: the connection still works, so the server
		// replied (a refusal, a cancel) or Go failed to read a row.
		return err
	}
	return afterCommitSent(err)
}

func errExpired() error {
	return ticketrush.ErrExpired()
}

// dueEvents finds the events of the oldest expired holds, without locking
// anything.
const dueEvents = `
SELECT DISTINCT event_id FROM (
	SELECT event_id FROM reservations
	WHERE status = 'reserved' AND expires_at <= $1
	ORDER BY expires_at
	LIMIT $2
) AS due
ORDER BY event_id`

// lockEvents locks event rows in id order, so two sweepers that restock the
// same events can never wait on each other in a cycle.
const lockEvents = `SELECT id FROM events WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE`

// releaseExpired releases the oldest expired holds of the events the
// sweeper has locked, and gives their tickets back, in one statement. SKIP
// LOCKED hands each hold to exactly one of several concurrent sweepers,
// and keeps a sweeper from waiting on a hold a purchase or cancel is
// settling.
const releaseExpired = `
WITH due AS (
	SELECT id FROM reservations
	WHERE status = 'reserved' AND expires_at <= $1 AND event_id = ANY($3::bigint[])
	ORDER BY expires_at
	LIMIT $2
	FOR UPDATE SKIP LOCKED
), released AS (
	UPDATE reservations r SET status = 'expired', updated_at = $1
	FROM due WHERE r.id = due.id
	RETURNING r.event_id, r.amount
), sums AS (
	SELECT event_id, count(*) AS holds, sum(amount) AS tickets FROM released GROUP BY event_id
), restocked AS (
	UPDATE events SET ticket_quantity = events.ticket_quantity + sums.tickets, updated_at = $1
	FROM sums WHERE events.id = sums.event_id
)
SELECT coalesce(sum(holds), 0)::bigint FROM sums`

// ReleaseExpired releases at most limit expired holds across all events,
// in one transaction of two round trips.
func (s *Store) ReleaseExpired(ctx context.Context, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var n int
	err := retry(ctx, func() (err error) {
		n, err = s.releaseExpired(ctx, limit)
		return err
	})
	if err != nil {
		return 0, s.fail("release expired", err)
	}
	return n, nil
}

// releaseExpired locks the event rows before any hold: a sweeper holding
// hold rows while it queued for a hot event row would make the reserves
// ahead of it, whose SKIP LOCKED passes over those rows, answer sold out
// with tickets about to come back. Holding the event rows first, it takes
// its turn among the reserves like one of them.
func (s *Store) releaseExpired(ctx context.Context, limit int) (int, error) {
	now := s.now()
	rows, _ := s.pool.Query(ctx, dueEvents, now, limit)
	events, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil || len(events) == 0 {
		return 0, err
	}
	var holds int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, lockEvents, events); err != nil {
			return err
		}
		return tx.QueryRow(ctx, releaseExpired, now, limit, events).Scan(&holds)
	})
	return int(holds), err
}
