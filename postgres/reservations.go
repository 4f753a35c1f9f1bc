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
		return nil, ticketrush.Errorf(ticketrush.EReservationNotFound, "Reservation not found.")
	}
	return res, err
}

// purchase sells an unexpired hold in one statement that never touches the
// event row: a sale changes no stock.
const purchase = `
UPDATE reservations SET status = 'purchased', updated_at = $3
WHERE id = $1 AND user_uid = $2 AND status = 'reserved' AND expires_at > $3
RETURNING ` + reservationColumns

// expireOne releases one expired hold and gives its tickets back, in one
// statement that locks the reservation row before the event row.
const expireOne = `
WITH released AS (
	UPDATE reservations SET status = 'expired', updated_at = $3
	WHERE id = $1 AND user_uid = $2 AND status = 'reserved' AND expires_at <= $3
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
		res, err := scanReservation(s.pool.QueryRow(ctx, purchase, id, visitor, now))
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
			return nil, ticketrush.Errorf(ticketrush.EAlreadyPurchased, "This reservation is already purchased.")
		case ticketrush.StatusCancelled:
			return nil, ticketrush.Errorf(ticketrush.ECancelled, "This reservation was cancelled.")
		case ticketrush.StatusExpired:
			return nil, errExpired()
		}
		if !res.ExpiresAt.After(now) {
			err := retry(ctx, func() error {
				_, err := s.pool.Exec(ctx, expireOne, id, visitor, now)
				return err
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
// locks the reservation row before the event row. A hold already past its
// expiry is released as expired rather than cancelled.
const cancel = `
WITH released AS (
	UPDATE reservations
	SET status = CASE WHEN expires_at > $3 THEN 'cancelled' ELSE 'expired' END, updated_at = $3
	WHERE id = $1 AND user_uid = $2 AND status = 'reserved'
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
		err := retry(ctx, func() (err error) {
			res, err = scanReservation(s.pool.QueryRow(ctx, cancel, id, visitor, now))
			return err
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
			return nil, ticketrush.Errorf(ticketrush.EAlreadyPurchased, "This reservation is already purchased.")
		case ticketrush.StatusCancelled:
			return res, nil
		case ticketrush.StatusExpired:
			return nil, errExpired()
		}
	}
	return nil, fmt.Errorf("reservation %d kept changing", id)
}

func errExpired() error {
	return ticketrush.Errorf(ticketrush.EExpired, "Reservation has expired.")
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
