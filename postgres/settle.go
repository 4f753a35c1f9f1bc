package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/ticketrush/ticketrush"
)

// Statements of group-committed purchases and cancels. $1 and $2 are the
// batch's hold ids and visitors, pairwise.
const (
	// lockSettleEvents locks, in id order, the event rows of the holds
	// this batch may restock: those to cancel, and those already past
	// their expiry (which any request releases as expired). A hold to
	// purchase before its expiry changes no stock, so its event row is not
	// taken and a batch of purchases never queues behind a hot event's
	// reserves. The choice rests on what never changes under the batch: a
	// hold's event and expiry are fixed, and a hold that is not reserved
	// never becomes reserved again.
	lockSettleEvents = `
SELECT id FROM events WHERE id IN (
	SELECT r.event_id FROM reservations r
	JOIN unnest($1::bigint[], $2::text[], $3::bool[]) AS q(id, visitor, cancel)
		ON r.id = q.id AND r.user_uid = q.visitor
	WHERE r.status = 'reserved' AND (q.cancel OR r.expires_at <= $4))
ORDER BY id FOR UPDATE`

	// lockSettleHolds reads and locks the batch's holds, in id order,
	// after their event rows: the order cancel and the sweeper use.
	lockSettleHolds = `
SELECT ` + reservationColumns + ` FROM reservations
WHERE (id, user_uid) IN (SELECT * FROM unnest($1::bigint[], $2::text[]))
ORDER BY id FOR UPDATE`

	// setStatuses writes every hold the batch settled, once each.
	setStatuses = `
UPDATE reservations r SET status = u.status, updated_at = $3
FROM unnest($1::bigint[], $2::text[]) AS u(id, status)
WHERE r.id = u.id`

	// restockEvents gives each event back the tickets the batch released.
	restockEvents = `
UPDATE events e SET ticket_quantity = e.ticket_quantity + u.tickets, updated_at = $3
FROM unnest($1::bigint[], $2::bigint[]) AS u(id, tickets)
WHERE e.id = u.id`
)

// purchaseMany sells, in one statement that commits on its own, each hold
// of the batch that is its visitor's, reserved and unexpired: what a
// purchase does that changes no stock, so no event row is taken. The holds
// are locked in id order first, the order the other paths lock holds in.
// It is an UPDATE, as a single purchase is, so its answer is tagged as one.
const purchaseMany = `
UPDATE reservations r SET status = 'purchased', updated_at = $3
FROM (
	SELECT l.id FROM reservations l
	JOIN unnest($1::bigint[], $2::text[]) AS q(id, visitor) ON l.id = q.id AND l.user_uid = q.visitor
	WHERE l.status = 'reserved' AND l.expires_at > $3
	ORDER BY l.id
	FOR UPDATE OF l
) AS locked
WHERE r.id = locked.id
RETURNING r.id, r.event_id, r.user_uid, r.status, r.amount, r.expires_at,
	r.created_at, r.updated_at, coalesce(r.idempotency_key, '')`

// SettleBatch is group commit of purchases and cancels.
//
// A batch of purchases of distinct holds, what a rush of buyers sends,
// takes one round trip: purchaseMany sells every hold that can be sold and
// commits. The requests it leaves (a hold not found, already settled, or
// past its expiry, which must be released with its event's stock) then go
// the general way, settleBatch, in a transaction of their own; their holds
// are not the sold ones, so the order between the two does not matter.
// Should that second transaction fail, its requests get the error and the
// sales stand.
//
// The general way is one transaction in two round trips. The first begins,
// locks the event rows the batch may restock (in id order), then the holds
// (in id order), and reads them; Go decides each request in order, as
// purchase and cancel decide a single call; the second writes every changed
// hold in one statement, every event's stock in one more, and commits.
func (s *Store) SettleBatch(ctx context.Context, reqs []ticketrush.SettleRequest) ([]ticketrush.SettleResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	if !onlyPurchases(reqs) {
		return s.settleGeneral(ctx, reqs)
	}
	ids := make([]int64, len(reqs))
	visitors := make([]string, len(reqs))
	for i, q := range reqs {
		ids[i], visitors[i] = q.ID, strings.ToLower(q.Visitor)
	}
	var sold map[int64]*ticketrush.Reservation
	err := retry(ctx, func() error {
		sold = map[int64]*ticketrush.Reservation{}
		return s.writeRows(ctx, func(rows pgx.Rows) error {
			for rows.Next() {
				r, err := scanReservation(rows)
				if err != nil {
					return err
				}
				sold[r.ID] = r
			}
			return rows.Err()
		}, purchaseMany, ids, visitors, s.now())
	})
	if err != nil {
		return nil, s.fail("settle batch", err)
	}
	results := make([]ticketrush.SettleResult, len(reqs))
	var rest []ticketrush.SettleRequest
	var restAt []int
	for i, q := range reqs {
		if r := sold[q.ID]; r != nil {
			results[i].Reservation = r
			continue
		}
		rest = append(rest, q)
		restAt = append(restAt, i)
	}
	if len(rest) == 0 {
		return results, nil
	}
	more, err := s.settleGeneral(ctx, rest)
	for j, i := range restAt {
		if err != nil {
			results[i].Err = err
		} else {
			results[i] = more[j]
		}
	}
	return results, nil
}

// onlyPurchases reports whether reqs are purchases of distinct holds.
func onlyPurchases(reqs []ticketrush.SettleRequest) bool {
	seen := make(map[int64]bool, len(reqs))
	for _, q := range reqs {
		if q.Cancel || seen[q.ID] {
			return false
		}
		seen[q.ID] = true
	}
	return true
}

// writeRows runs one write statement that commits on its own and hands
// its rows to read, classifying failures as writeRow does.
func (s *Store) writeRows(ctx context.Context, read func(pgx.Rows) error, sql string, args ...any) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	if err := ctx.Err(); err != nil {
		return err // pgx would send nothing
	}
	rows, _ := conn.Query(ctx, sql, args...)
	err = read(rows)
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	if err == nil || !conn.Conn().IsClosed() {
		return err
	}
	return afterCommitSent(err)
}

// settleGeneral is the general way of SettleBatch.
func (s *Store) settleGeneral(ctx context.Context, reqs []ticketrush.SettleRequest) ([]ticketrush.SettleResult, error) {
	var results []ticketrush.SettleResult
	err := retry(ctx, func() (err error) {
		results, err = s.settleBatch(ctx, reqs)
		return err
	})
	if err != nil {
		return nil, s.fail("settle batch", err)
	}
	return results, nil
}

func (s *Store) settleBatch(ctx context.Context, reqs []ticketrush.SettleRequest) ([]ticketrush.SettleResult, error) {
	now := s.now()
	results := make([]ticketrush.SettleResult, len(reqs))
	ids := make([]int64, len(reqs))
	visitors := make([]string, len(reqs))
	cancels := make([]bool, len(reqs))
	for i, q := range reqs {
		ids[i], visitors[i], cancels[i] = q.ID, strings.ToLower(q.Visitor), q.Cancel
	}

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	defer rollback(conn) // a no-op after the commit

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockSettleEvents, ids, visitors, cancels, now)
	b.Queue(lockSettleHolds, ids, visitors)
	br := conn.SendBatch(ctx, b)
	holds, err := func() (map[int64]*ticketrush.Reservation, error) {
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
		rows, _ := br.Query()
		list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*ticketrush.Reservation, error) {
			return scanReservation(row)
		})
		if err != nil {
			return nil, err
		}
		holds := make(map[int64]*ticketrush.Reservation, len(list))
		for _, r := range list {
			holds[r.ID] = r
		}
		return holds, nil
	}()
	if cerr := br.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}

	// Decide in order, each request against the holds as the earlier
	// ones left them.
	var (
		setStatus  []string
		changedIDs []int64
		restock    = map[int64]int64{}
		events     []int64
	)
	for i, q := range reqs {
		r := holds[q.ID]
		if r == nil || r.UserUID != visitors[i] {
			results[i].Err = ticketrush.ErrReservationNotFound()
			continue
		}
		switch r.Status {
		case ticketrush.StatusPurchased:
			results[i].Err = ticketrush.ErrAlreadyPurchased()
			continue
		case ticketrush.StatusCancelled:
			if q.Cancel {
				results[i].Reservation = clone(r)
			} else {
				results[i].Err = ticketrush.ErrCancelled()
			}
			continue
		case ticketrush.StatusExpired:
			results[i].Err = errExpired()
			continue
		}
		status := ticketrush.StatusPurchased
		switch {
		case !r.ExpiresAt.After(now):
			status = ticketrush.StatusExpired
		case q.Cancel:
			status = ticketrush.StatusCancelled
		}
		r.Status, r.UpdatedAt = status, now
		changedIDs = append(changedIDs, r.ID)
		setStatus = append(setStatus, status)
		if status != ticketrush.StatusPurchased {
			if _, ok := restock[r.EventID]; !ok {
				events = append(events, r.EventID)
			}
			restock[r.EventID] += r.Amount
		}
		if status == ticketrush.StatusExpired {
			results[i].Err = errExpired()
			continue
		}
		results[i].Reservation = clone(r)
	}
	if len(changedIDs) == 0 {
		// Nothing to write: the deferred rollback ends the transaction.
		return results, nil
	}

	b = &pgx.Batch{}
	b.Queue(setStatuses, changedIDs, setStatus, now)
	if len(events) > 0 {
		tickets := make([]int64, len(events))
		for i, id := range events {
			tickets[i] = restock[id]
		}
		b.Queue(restockEvents, events, tickets, now)
	}
	b.Queue("COMMIT")
	if conn.Conn().IsClosed() {
		return nil, pgconn.ErrConnClosed
	}
	br = conn.SendBatch(ctx, b)
	err = func() error {
		// The holds are locked, so every one of them is updated.
		if _, err := br.Exec(); err != nil {
			return err
		}
		if len(events) > 0 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		tag, err := br.Exec()
		if err != nil {
			return err
		}
		if tag.String() != "COMMIT" {
			return fmt.Errorf("commit answered %q", tag.String())
		}
		return nil
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, afterCommitSent(err)
	}
	return results, nil
}
