package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ticketrush/ticketrush"
)

// Statements both reserve strategies share.
const (
	lockEvent = `SELECT ` + eventColumns + ` FROM events WHERE id = $1 FOR UPDATE`

	// releaseEventExpired releases the event's oldest expired holds, at
	// most releaseChunk of them and only as many as bring its stock up to
	// the demand $3: the work inside the hot transaction stays bounded
	// however many holds expired at once. It skips rows another
	// transaction has locked (a purchase or cancel settling them): that
	// transaction settles them itself, and a reserve holding the event row
	// must never wait for a transaction that may be waiting for the event
	// row. The sweeper locks the event row before any hold (see
	// releaseExpired), so it never holds rows this would skip while it
	// waits. It returns the tickets released and whether the chunk was
	// full (more may be left).
	releaseEventExpired = `
WITH due AS (
	SELECT id, amount, expires_at FROM reservations
	WHERE event_id = $1 AND status = 'reserved' AND expires_at <= $2
		AND (SELECT ticket_quantity FROM events WHERE id = $1) < $3
	ORDER BY expires_at, id
	LIMIT $4
	FOR UPDATE SKIP LOCKED
), picked AS (
	SELECT id FROM (
		SELECT id, sum(amount) OVER (ORDER BY expires_at, id) - amount AS before FROM due
	) AS d
	WHERE before < $3 - (SELECT ticket_quantity FROM events WHERE id = $1)
), released AS (
	UPDATE reservations r SET status = 'expired', updated_at = $2
	FROM picked WHERE r.id = picked.id
	RETURNING r.amount
)
SELECT coalesce((SELECT sum(amount) FROM released), 0)::bigint,
	(SELECT count(*) FROM due) = $4`

	// visitorTotals sums what each visitor holds (unexpired) or bought for
	// the event, and reads nothing when the event has no per-visitor cap.
	visitorTotals = `
SELECT user_uid, sum(amount)::bigint FROM reservations
WHERE event_id = $1 AND user_uid = ANY($2::text[])
	AND (status = 'purchased' OR (status = 'reserved' AND expires_at > $3))
	AND (SELECT max_per_visitor FROM events WHERE id = $1) > 0
GROUP BY user_uid`

	addStock = `UPDATE events SET ticket_quantity = ticket_quantity + $2, updated_at = $3 WHERE id = $1`

	// roomEntries reads the latest queue entry of each visitor, and
	// nothing when the event has no waiting room.
	roomEntries = `
SELECT DISTINCT ON (q.visitor) ` + entryColumns + `
FROM queue_entries q LEFT JOIN reservations r ON r.id = q.reservation_id
WHERE q.event_id = $1 AND q.visitor = ANY($2::text[])
	AND EXISTS (SELECT 1 FROM events WHERE id = $1 AND waiting_room IS NOT NULL)
ORDER BY q.visitor, q.attempt DESC`

	// usePass records the hold made with an admission pass.
	usePass = `UPDATE queue_entries SET reservation_id = $4
WHERE event_id = $1 AND visitor = $2 AND attempt = $3`
)

// releaseChunk bounds the expired holds one statement of a reserve
// releases.
const releaseChunk = 256

// releaseMore releases further chunks of the event's expired holds until
// the stock meets demand or none are left, one round trip each.
func releaseMore(ctx context.Context, q querier, eventID int64, now time.Time, demand int64) (int64, error) {
	var total int64
	for {
		var n int64
		var full bool
		// The stock column moves only at the end of the transaction, so
		// each chunk asks for what the earlier ones left short.
		if err := q.QueryRow(ctx, releaseEventExpired, eventID, now, demand-total, releaseChunk).Scan(&n, &full); err != nil {
			return 0, err
		}
		total += n
		if !full || n == 0 {
			return total, nil
		}
	}
}

// admissionOf checks what comes before the stock in the order of checks:
// a closed or unstarted sale (as Decide words them), then the waiting
// room's pass.
func admissionOf(e *ticketrush.Event, now time.Time, r ticketrush.ReserveRequest, en *ticketrush.QueueEntry) error {
	if e.SaleClosed || (e.SaleStartsAt != nil && now.Before(*e.SaleStartsAt)) {
		return ticketrush.Decide(e, now, r, r.Amount, 0)
	}
	return ticketrush.CheckAdmission(e, en, now, r)
}

// Statements of the lock strategy.
const (
	findIdempotent = `SELECT ` + reservationColumns + `
FROM reservations WHERE user_uid = $1 AND idempotency_key = $2`

	insertReservation = `
INSERT INTO reservations (user_uid, event_id, status, amount, expires_at, idempotency_key,
	created_at, updated_at)
VALUES ($1, $2, 'reserved', $3, $4, nullif($5, ''), $6, $6)
RETURNING id`
)

// Reserve is the original's strategy, kept as the measured baseline: one
// transaction per request, holding the event row from the first statement
// to the commit.
func (s *Store) Reserve(ctx context.Context, r ticketrush.ReserveRequest) (*ticketrush.Reservation, error) {
	if err := checkRequest(r); err != nil {
		return nil, err
	}
	var res *ticketrush.Reservation
	err := retry(ctx, func() (err error) {
		res, err = s.reserve(ctx, r)
		return err
	})
	if err != nil {
		return nil, s.fail("reserve", err)
	}
	return res, nil
}

func (s *Store) reserve(ctx context.Context, r ticketrush.ReserveRequest) (*ticketrush.Reservation, error) {
	release, err := s.gates.enter(ctx, r.EventID)
	if err != nil {
		return nil, err
	}
	defer release()
	now := s.now()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer rollbackTx(tx)

	e, err := scanEvent(tx.QueryRow(ctx, lockEvent, r.EventID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errEventNotFound()
	}
	if err != nil {
		return nil, err
	}

	if r.IdempotencyKey != "" {
		prev, err := scanReservation(tx.QueryRow(ctx, findIdempotent, r.VisitorToken, r.IdempotencyKey))
		switch {
		case err == nil && r.SameBody(prev):
			return prev, nil
		case err == nil:
			return nil, ticketrush.ErrIdempotencyKeyReused()
		case !errors.Is(err, pgx.ErrNoRows):
			return nil, err
		}
	}

	var pass *ticketrush.QueueEntry
	if e.WaitingRoom != nil {
		en, err := scanEntry(e.ID, now, tx.QueryRow(ctx, selectEntry, e.ID, r.VisitorToken))
		switch {
		case err == nil:
			pass = &en.e
		case !errors.Is(err, pgx.ErrNoRows):
			return nil, err
		}
	}
	if err := admissionOf(e, now, r, pass); err != nil {
		return nil, err
	}

	stock, released := e.TicketQuantity, int64(0)
	if stock < r.Amount {
		if released, err = releaseMore(ctx, tx, e.ID, now, r.Amount); err != nil {
			return nil, err
		}
		stock += released
	}
	var held int64
	if e.MaxPerVisitor > 0 {
		rows, _ := tx.Query(ctx, visitorTotals, e.ID, []string{r.VisitorToken}, now)
		totals, err := collectTotals(rows)
		if err != nil {
			return nil, err
		}
		held = totals[r.VisitorToken]
	}

	refused := ticketrush.Decide(e, now, r, stock, held)
	if refused != nil && released == 0 {
		// Nothing changed: roll back, as the original's exception did, so a
		// refusal costs no commit.
		return nil, refused
	}
	var res *ticketrush.Reservation
	if refused == nil {
		if _, err := tx.Exec(ctx, addStock, e.ID, released-r.Amount, now); err != nil {
			return nil, err
		}
		res = &ticketrush.Reservation{
			EventID:        e.ID,
			UserUID:        r.VisitorToken,
			Status:         ticketrush.StatusReserved,
			Amount:         r.Amount,
			ExpiresAt:      ticketrush.HoldUntil(now, e),
			CreatedAt:      now,
			UpdatedAt:      now,
			IdempotencyKey: r.IdempotencyKey,
		}
		err := tx.QueryRow(ctx, insertReservation, res.UserUID, res.EventID, res.Amount,
			res.ExpiresAt, res.IdempotencyKey, now).Scan(&res.ID)
		if err != nil {
			return nil, err
		}
		if e.WaitingRoom != nil {
			if _, err := tx.Exec(ctx, usePass, e.ID, r.VisitorToken, r.Admission, res.ID); err != nil {
				return nil, err
			}
		}
	} else if released > 0 {
		// The refusal stands, but the expired holds it released are back
		// on sale.
		if _, err := tx.Exec(ctx, addStock, e.ID, released, now); err != nil {
			return nil, err
		}
	}
	if tx.Conn().IsClosed() {
		// Nothing can be sent: the server rolls the transaction back.
		return nil, pgconn.ErrConnClosed
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, afterCommitSent(err)
	}
	if refused != nil {
		return nil, refused
	}
	return res, nil
}

// Statements of group commit.
const (
	findIdempotentMany = `SELECT ` + reservationColumns + `
FROM reservations
WHERE (user_uid, idempotency_key) IN (SELECT * FROM unnest($1::text[], $2::text[]))`

	// insertReservations inserts the batch's reservations in one statement.
	// Ids are drawn in a CTE that is read twice, so PostgreSQL evaluates
	// it once, and returned with each request's position: the mapping from
	// id to request never depends on the order RETURNING happens to use.
	//
	// Rows go in in the order given, which reserveBatch sorts by visitor
	// and key: every transaction takes the unique index's entries in one
	// global order, so two batches of different events sharing a visitor's
	// keys crosswise wait for each other at most one way, never in a cycle.
	// A request that used an admission pass ($7, the entry's attempt) has
	// the hold recorded on its queue entry in the same statement.
	insertReservations = `
WITH new AS (
	SELECT nextval('reservations_id_seq') AS id, t.ord, t.user_uid, t.amount, t.idempotency_key,
		t.admission
	FROM unnest($1::text[], $2::bigint[], $3::text[], $7::bigint[])
		WITH ORDINALITY AS t(user_uid, amount, idempotency_key, admission, ord)
), inserted AS (
	INSERT INTO reservations (id, event_id, user_uid, status, amount, expires_at,
		idempotency_key, created_at, updated_at)
	SELECT id, $4, user_uid, 'reserved', amount, $5, nullif(idempotency_key, ''), $6, $6
	FROM new ORDER BY ord
), passes AS (
	UPDATE queue_entries q SET reservation_id = new.id
	FROM new
	WHERE new.admission > 0 AND q.event_id = $4 AND q.visitor = new.user_uid
		AND q.attempt = new.admission
)
SELECT id, ord FROM new`
)

// ReserveBatch is group commit: one transaction for all of reqs, in two
// round trips. The first begins, locks the event row, and reads everything
// the decisions need; Go decides each request in order; the second writes
// the stock once, inserts every reservation at once and commits.
func (s *Store) ReserveBatch(ctx context.Context, eventID int64, reqs []ticketrush.ReserveRequest) ([]ticketrush.ReserveResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	for _, r := range reqs {
		if r.EventID != eventID {
			return nil, fmt.Errorf("postgres: reserve batch: request for event %d in a batch for event %d", r.EventID, eventID)
		}
	}
	var results []ticketrush.ReserveResult
	err := retry(ctx, func() (err error) {
		results, err = s.reserveBatch(ctx, eventID, reqs)
		return err
	})
	if err != nil {
		return nil, s.fail("reserve batch", err)
	}
	return results, nil
}

// idemKey is a visitor's Idempotency-Key: keys are scoped per visitor.
type idemKey struct{ visitor, key string }

func (s *Store) reserveBatch(ctx context.Context, eventID int64, reqs []ticketrush.ReserveRequest) ([]ticketrush.ReserveResult, error) {
	now := s.now()
	results := make([]ticketrush.ReserveResult, len(reqs))

	// Gather what the first round trip asks for. Invalid requests are
	// answered here and take no part in the rest.
	var (
		demand      int64
		valid       int
		visitors    []string
		seen        = map[string]bool{}
		keyVisitors []string
		keys        []string
	)
	for i, r := range reqs {
		if err := checkRequest(r); err != nil {
			results[i].Err = err
			continue
		}
		valid++
		demand += r.Amount
		if !seen[r.VisitorToken] {
			seen[r.VisitorToken] = true
			visitors = append(visitors, r.VisitorToken)
		}
		if r.IdempotencyKey != "" {
			keyVisitors = append(keyVisitors, r.VisitorToken)
			keys = append(keys, r.IdempotencyKey)
		}
	}
	if valid == 0 {
		return results, nil
	}

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	defer rollback(conn) // a no-op after the commit

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockEvent, eventID)
	if len(keys) > 0 {
		b.Queue(findIdempotentMany, keyVisitors, keys)
	}
	b.Queue(releaseEventExpired, eventID, now, demand, releaseChunk)
	b.Queue(visitorTotals, eventID, visitors, now)
	b.Queue(roomEntries, eventID, visitors)
	st, err := readBatchState(conn.SendBatch(ctx, b), len(keys) > 0, now)
	if err != nil {
		return nil, err
	}
	e := st.event
	if e != nil && st.more && e.TicketQuantity+st.released < demand {
		more, err := releaseMore(ctx, conn, eventID, now, demand-st.released)
		if err != nil {
			return nil, err
		}
		st.released += more
	}
	if e == nil {
		for i := range results {
			if results[i].Err == nil {
				results[i].Err = errEventNotFound()
			}
		}
		return results, nil
	}

	// Decide in order, as if each request were a Reserve of its own.
	var (
		stock    = e.TicketQuantity + st.released
		taken    int64
		expires  = ticketrush.HoldUntil(now, e)
		inserts  []int               // requests to insert, by position in reqs
		firstFor = map[idemKey]int{} // key → request in this batch that took it
		repeats  [][2]int            // {request, earlier request with its key}
	)
	for i, r := range reqs {
		if results[i].Err != nil {
			continue
		}
		k := idemKey{r.VisitorToken, r.IdempotencyKey}
		if r.IdempotencyKey != "" {
			if prev, ok := st.previous[k]; ok {
				if r.SameBody(prev) {
					results[i].Reservation = clone(prev)
				} else {
					results[i].Err = ticketrush.ErrIdempotencyKeyReused()
				}
				continue
			}
			if j, ok := firstFor[k]; ok {
				if r.SameBody(results[j].Reservation) {
					repeats = append(repeats, [2]int{i, j})
				} else {
					results[i].Err = ticketrush.ErrIdempotencyKeyReused()
				}
				continue
			}
		}
		var pass *ticketrush.QueueEntry
		if en := st.entries[r.VisitorToken]; en != nil {
			pass = &en.e
		}
		if err := admissionOf(e, now, r, pass); err != nil {
			results[i].Err = err
			continue
		}
		if err := ticketrush.Decide(e, now, r, stock, st.held[r.VisitorToken]); err != nil {
			results[i].Err = err
			continue
		}
		if e.WaitingRoom != nil {
			// The pass is used: a second request with it in this batch
			// is refused as CheckAdmission refuses a used one.
			pass.ReservationID = -1
		}
		stock -= r.Amount
		taken += r.Amount
		st.held[r.VisitorToken] += r.Amount
		results[i].Reservation = &ticketrush.Reservation{
			EventID:        e.ID,
			UserUID:        r.VisitorToken,
			Status:         ticketrush.StatusReserved,
			Amount:         r.Amount,
			ExpiresAt:      expires,
			CreatedAt:      now,
			UpdatedAt:      now,
			IdempotencyKey: r.IdempotencyKey,
		}
		inserts = append(inserts, i)
		if r.IdempotencyKey != "" {
			firstFor[k] = i
		}
	}

	b = &pgx.Batch{}
	if st.released > 0 || taken > 0 {
		b.Queue(addStock, e.ID, st.released-taken, now)
	}
	if len(inserts) > 0 {
		slices.SortStableFunc(inserts, func(i, j int) int {
			return cmp.Or(strings.Compare(reqs[i].VisitorToken, reqs[j].VisitorToken),
				strings.Compare(reqs[i].IdempotencyKey, reqs[j].IdempotencyKey))
		})
		users := make([]string, len(inserts))
		amounts := make([]int64, len(inserts))
		ikeys := make([]string, len(inserts))
		admissions := make([]int64, len(inserts))
		for n, i := range inserts {
			users[n], amounts[n], ikeys[n] = reqs[i].VisitorToken, reqs[i].Amount, reqs[i].IdempotencyKey
			if e.WaitingRoom != nil {
				admissions[n] = reqs[i].Admission
			}
		}
		b.Queue(insertReservations, users, amounts, ikeys, e.ID, expires, now, admissions)
	}
	b.Queue("COMMIT")
	if conn.Conn().IsClosed() {
		return nil, pgconn.ErrConnClosed
	}
	if err := writeBatch(ctx, conn, b, st.released > 0 || taken > 0, results, inserts); err != nil {
		return nil, afterCommitSent(err)
	}
	for _, rep := range repeats {
		results[rep[0]].Reservation = clone(results[rep[1]].Reservation)
	}
	return results, nil
}

// batchState is what the first round trip of a batch reads.
type batchState struct {
	event    *ticketrush.Event // nil when the event does not exist
	previous map[idemKey]*ticketrush.Reservation
	released int64
	more     bool // the release stopped at its chunk
	held     map[string]int64
	entries  map[string]*entry // latest queue entries, when the event has a room
}

func readBatchState(br pgx.BatchResults, withKeys bool, now time.Time) (*batchState, error) {
	st, err := func() (*batchState, error) {
		st := &batchState{}
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
		e, err := scanEvent(br.QueryRow())
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return nil, err
		default:
			st.event = e
		}
		st.previous = map[idemKey]*ticketrush.Reservation{}
		if withKeys {
			rows, _ := br.Query()
			prev, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*ticketrush.Reservation, error) {
				return scanReservation(row)
			})
			if err != nil {
				return nil, err
			}
			for _, p := range prev {
				st.previous[idemKey{p.UserUID, p.IdempotencyKey}] = p
			}
		}
		if err := br.QueryRow().Scan(&st.released, &st.more); err != nil {
			return nil, err
		}
		rows, _ := br.Query()
		st.held, err = collectTotals(rows)
		if err != nil {
			return nil, err
		}
		st.entries = map[string]*entry{}
		rows, _ = br.Query()
		for rows.Next() {
			var eventID int64
			if st.event != nil {
				eventID = st.event.ID
			}
			en, err := scanEntry(eventID, now, rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			st.entries[en.e.Visitor] = en
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
		return st, nil
	}()
	if cerr := br.Close(); err == nil && cerr != nil {
		return nil, cerr
	}
	return st, err
}

// writeBatch sends the second round trip of a batch and fills in the ids
// of the inserted reservations.
func writeBatch(ctx context.Context, conn *pgxpool.Conn, b *pgx.Batch, withStock bool,
	results []ticketrush.ReserveResult, inserts []int) error {
	br := conn.SendBatch(ctx, b)
	err := func() error {
		if withStock {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		if len(inserts) > 0 {
			rows, _ := br.Query()
			n := 0
			var id, ord int64
			_, err := pgx.ForEachRow(rows, []any{&id, &ord}, func() error {
				if ord < 1 || ord > int64(len(inserts)) {
					return fmt.Errorf("insert returned position %d of %d", ord, len(inserts))
				}
				results[inserts[ord-1]].Reservation.ID = id
				n++
				return nil
			})
			if err != nil {
				return err
			}
			if n != len(inserts) {
				return fmt.Errorf("inserted %d reservations, expected %d", n, len(inserts))
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
	return err
}

func collectTotals(rows pgx.Rows) (map[string]int64, error) {
	totals := map[string]int64{}
	var visitor string
	var n int64
	_, err := pgx.ForEachRow(rows, []any{&visitor, &n}, func() error {
		totals[visitor] = n
		return nil
	})
	return totals, err
}

// checkRequest rejects what no backend could store. The HTTP layer
// validates more (the token's UUID form); this guards the stock against a
// zero or negative amount from any caller.
func checkRequest(r ticketrush.ReserveRequest) error {
	if r.Amount < 1 || r.Amount > ticketrush.MaxAmount {
		v := ticketrush.ValidationError{}
		v.Add("amount", "must be an integer from 1 to 10000")
		return v.Err()
	}
	if r.VisitorToken == "" {
		_, err := ticketrush.ParseVisitorToken("")
		return err
	}
	return ticketrush.ValidateIdempotencyKey(r.IdempotencyKey)
}

func clone(r *ticketrush.Reservation) *ticketrush.Reservation {
	c := *r
	return &c
}
