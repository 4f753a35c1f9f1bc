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
			return nil, ticketrush.ErrAlreadyPurchased()
		case ticketrush.StatusCancelled:
			return nil, ticketrush.ErrCancelled()
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
			return nil, ticketrush.ErrAlreadyPurchased()
		case ticketrush.StatusCancelled:
			return res, nil
		case ticketrush.StatusExpired:
			return nil, errExpired()
		}
	}
	return nil, fmt.Errorf("reservation %d kept changing", id)
}

func errExpired() error {
	return ticketrush.ErrExpired()
}

// releaseExpired releases the oldest expired holds of all events. SKIP
// LOCKED hands each hold to exactly one of several concurrent sweepers, and
// keeps a sweeper from waiting on a hold a purchase or cancel is settling.
const releaseExpired = `
WITH due AS (
	SELECT id FROM reservations
	WHERE status = 'reserved' AND expires_at <= $1
	ORDER BY expires_at
	LIMIT $2
	FOR UPDATE SKIP LOCKED
), released AS (
	UPDATE reservations r SET status = 'expired', updated_at = $1
	FROM due WHERE r.id = due.id
	RETURNING r.event_id, r.amount
)
SELECT event_id, count(*), sum(amount)::bigint
FROM released GROUP BY event_id ORDER BY event_id`

// lockEvents locks event rows in id order, so two sweepers that restock the
// same events can never wait on each other in a cycle.
const lockEvents = `SELECT id FROM events WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE`

const restockEvents = `
UPDATE events SET ticket_quantity = events.ticket_quantity + d.tickets, updated_at = $3
FROM unnest($1::bigint[], $2::bigint[]) AS d(id, tickets)
WHERE events.id = d.id`

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

func (s *Store) releaseExpired(ctx context.Context, limit int) (int, error) {
	now := s.now()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	defer rollback(conn) // a no-op after the commit

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(releaseExpired, now, limit)
	br := conn.SendBatch(ctx, b)
	var (
		events, tickets []int64
		holds           int
	)
	err = func() error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		rows, _ := br.Query()
		var event, count, sum int64
		_, err := pgx.ForEachRow(rows, []any{&event, &count, &sum}, func() error {
			events = append(events, event)
			tickets = append(tickets, sum)
			holds += int(count)
			return nil
		})
		return err
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	if holds == 0 {
		_, err := conn.Exec(ctx, "COMMIT")
		return 0, err
	}

	b = &pgx.Batch{}
	b.Queue(lockEvents, events)
	b.Queue(restockEvents, events, tickets, now)
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return 0, err
	}
	if conn.Conn().PgConn().TxStatus() != 'I' {
		return 0, errors.New("commit did not end the transaction")
	}
	return holds, nil
}
