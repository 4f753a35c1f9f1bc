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

// Statements of group commit. Each reads or writes every event of the
// transaction at once, so a transaction costs the same number of
// statements for fifty events as for one.
const (
	// lockBatchEvents locks the transaction's events in id order: two
	// transactions over overlapping events wait for each other at most one
	// way, never in a cycle.
	lockBatchEvents = `SELECT ` + eventColumns + ` FROM events WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE`

	// findIdempotentMany, visitorTotalsMany and roomEntriesMany look each
	// key up on its own (LATERAL), with every column of the index they use
	// bound to the key's values: whatever the plan pgx's cached statement
	// settles on (a generic plan made while the table was empty included),
	// each lookup is one index descent, so the cost does not grow with the
	// table. Written as a join against an array, the generic plan could
	// bind only the event and filter the visitors, scanning all of an
	// event's reservations per batch.
	findIdempotentMany = `SELECT ` + reservationColumns + `
FROM unnest($1::text[], $2::text[]) AS k(k_user, k_key)
CROSS JOIN LATERAL (
	SELECT * FROM reservations
	WHERE user_uid = k.k_user AND idempotency_key = k.k_key
	LIMIT 1 -- the key is unique; the limit keeps the lookup a lookup
) AS reservations`

	// releaseEventsExpired is releaseEventExpired for every event whose
	// stock is short of its demand ($2, by event in $1): for each, the
	// oldest expired holds, at most $4 of them, and only as many as bring
	// the stock up to the demand. It answers one row per short event: the
	// tickets released and whether the chunk was full.
	releaseEventsExpired = `
WITH want AS (
	SELECT e.id AS event_id, d.demand - e.ticket_quantity AS short
	FROM unnest($1::bigint[], $2::bigint[]) AS d(event_id, demand)
	JOIN events e ON e.id = d.event_id
	WHERE e.ticket_quantity < d.demand
), due AS (
	SELECT h.id, h.event_id, h.amount, h.expires_at, want.short
	FROM want CROSS JOIN LATERAL (
		SELECT id, event_id, amount, expires_at FROM reservations
		WHERE event_id = want.event_id AND status = 'reserved' AND expires_at <= $3
		ORDER BY expires_at, id
		LIMIT $4
		FOR UPDATE SKIP LOCKED
	) AS h
), picked AS (
	SELECT id FROM (
		SELECT id, short,
			sum(amount) OVER (PARTITION BY event_id ORDER BY expires_at, id) - amount AS before
		FROM due
	) AS d
	WHERE before < short
), released AS (
	UPDATE reservations r SET status = 'expired', updated_at = $3
	FROM picked WHERE r.id = picked.id
	RETURNING r.event_id, r.amount
)
SELECT want.event_id,
	coalesce((SELECT sum(amount) FROM released WHERE released.event_id = want.event_id), 0)::bigint,
	(SELECT count(*) FROM due WHERE due.event_id = want.event_id) = $4
FROM want`

	// visitorTotalsMany is visitorTotals for (event, visitor) pairs, read
	// only for events with a per-visitor cap: what each visitor holds
	// (unexpired) or bought for the event, as one index descent per pair.
	visitorTotalsMany = `
SELECT v.event_id, v.user_uid, t.n
FROM unnest($1::bigint[], $2::text[]) AS v(event_id, user_uid)
JOIN events e ON e.id = v.event_id AND e.max_per_visitor > 0
CROSS JOIN LATERAL (
	SELECT sum(r.amount)::bigint AS n FROM reservations r
	WHERE r.event_id = v.event_id AND r.user_uid = v.user_uid
		AND (r.status = 'purchased' OR (r.status = 'reserved' AND r.expires_at > $3))
) AS t
WHERE t.n IS NOT NULL`

	// roomEntriesMany reads the latest queue entry of each (event,
	// visitor) pair, only for events with a waiting room.
	roomEntriesMany = `
SELECT v.event_id, ` + entryColumns + `
FROM unnest($1::bigint[], $2::text[]) AS v(event_id, visitor)
JOIN events e ON e.id = v.event_id AND e.waiting_room IS NOT NULL
CROSS JOIN LATERAL (
	SELECT * FROM queue_entries q
	WHERE q.event_id = v.event_id AND q.visitor = v.visitor
	ORDER BY q.attempt DESC LIMIT 1
) AS q
LEFT JOIN reservations r ON r.id = q.reservation_id`

	// addStocks moves the stock of several events at once.
	addStocks = `
UPDATE events e SET ticket_quantity = e.ticket_quantity + d.delta, updated_at = $3
FROM unnest($1::bigint[], $2::bigint[]) AS d(id, delta)
WHERE e.id = d.id`

	// insertReservations inserts the transaction's reservations in one
	// statement. Ids are drawn in a CTE that is read twice, so PostgreSQL
	// evaluates it once, and returned with each request's position: the
	// mapping from id to request never depends on the order RETURNING
	// happens to use.
	//
	// Rows go in in the order given, which reserveBatches sorts by visitor
	// and key: every transaction takes the unique index's entries in one
	// global order, so two transactions sharing a visitor's keys crosswise
	// wait for each other at most one way, never in a cycle. A request that
	// used an admission pass (admission, the entry's attempt) has the hold
	// recorded on its queue entry in the same statement. The transaction
	// holds every event row FOR UPDATE, which is what keeps a reservation
	// from naming a deleted event (there is no foreign key, see migration
	// 00011).
	insertReservations = `
WITH new AS (
	SELECT nextval('reservations_id_seq') AS id, t.ord, t.event_id, t.user_uid, t.amount,
		t.idempotency_key, t.admission, t.expires_at
	FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::timestamptz[])
		WITH ORDINALITY AS t(event_id, user_uid, amount, idempotency_key, admission, expires_at, ord)
), inserted AS (
	INSERT INTO reservations (id, event_id, user_uid, status, amount, expires_at,
		idempotency_key, created_at, updated_at)
	SELECT id, event_id, user_uid, 'reserved', amount, expires_at, nullif(idempotency_key, ''), $7, $7
	FROM new ORDER BY ord
), passes AS (
	UPDATE queue_entries q SET reservation_id = new.id
	FROM new
	WHERE new.admission > 0 AND q.event_id = new.event_id AND q.visitor = new.user_uid
		AND q.attempt = new.admission
)
SELECT id, ord FROM new`
)

// ReserveBatch is group commit for one event: ReserveBatches with one
// batch.
func (s *Store) ReserveBatch(ctx context.Context, eventID int64, reqs []ticketrush.ReserveRequest) ([]ticketrush.ReserveResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	for _, r := range reqs {
		if r.EventID != eventID {
			return nil, fmt.Errorf("postgres: reserve batch: request for event %d in a batch for event %d", r.EventID, eventID)
		}
	}
	out, err := s.ReserveBatches(ctx, []ticketrush.EventBatch{{EventID: eventID, Reqs: reqs}})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ReserveBatches is group commit: one transaction for every event's
// requests, in two round trips whatever the number of events. The first
// begins, locks the event rows in id order, and reads everything the
// decisions need; Go decides each event's requests in order; the second
// writes every stock at once, inserts every reservation at once and
// commits.
func (s *Store) ReserveBatches(ctx context.Context, batches []ticketrush.EventBatch) ([][]ticketrush.ReserveResult, error) {
	if err := ticketrush.CheckBatches(batches); err != nil {
		return nil, err
	}
	var results [][]ticketrush.ReserveResult
	err := retry(ctx, func() (err error) {
		results, err = s.reserveBatches(ctx, batches)
		return err
	})
	if err != nil {
		return nil, s.fail("reserve batch", err)
	}
	return results, nil
}

// idemKey is a visitor's Idempotency-Key: keys are scoped per visitor.
type idemKey struct{ visitor, key string }

// evVisitor is a visitor of one event.
type evVisitor struct {
	event   int64
	visitor string
}

// eventWork is one event's part of a transaction.
type eventWork struct {
	id       int64
	reqs     []ticketrush.ReserveRequest
	results  []ticketrush.ReserveResult
	demand   int64
	event    *ticketrush.Event // nil when the event does not exist
	released int64
	more     bool // the release stopped at its chunk
}

// inserted is one reservation to insert: request i of work w.
type inserted struct{ w, i int }

func (s *Store) reserveBatches(ctx context.Context, batches []ticketrush.EventBatch) ([][]ticketrush.ReserveResult, error) {
	now := s.now()
	out := make([][]ticketrush.ReserveResult, len(batches))
	works := make([]eventWork, 0, len(batches))

	// Gather what the first round trip asks for. Invalid requests are
	// answered here and take no part in the rest.
	var (
		ids, demands []int64
		pairEvents   []int64
		pairVisitors []string
		seen         = map[evVisitor]bool{}
		keyVisitors  []string
		keys         []string
	)
	for n, b := range batches {
		out[n] = make([]ticketrush.ReserveResult, len(b.Reqs))
		w := eventWork{id: b.EventID, reqs: b.Reqs, results: out[n]}
		valid := 0
		for i, r := range b.Reqs {
			if r.EventID != b.EventID {
				w.results[i].Err = fmt.Errorf("postgres: reserve batch: request for event %d in a batch for event %d", r.EventID, b.EventID)
				continue
			}
			if err := checkRequest(r); err != nil {
				w.results[i].Err = err
				continue
			}
			valid++
			w.demand += r.Amount
			if k := (evVisitor{b.EventID, r.VisitorToken}); !seen[k] {
				seen[k] = true
				pairEvents = append(pairEvents, b.EventID)
				pairVisitors = append(pairVisitors, r.VisitorToken)
			}
			if r.IdempotencyKey != "" {
				keyVisitors = append(keyVisitors, r.VisitorToken)
				keys = append(keys, r.IdempotencyKey)
			}
		}
		if valid > 0 {
			works = append(works, w)
		}
	}
	if len(works) == 0 {
		return out, nil
	}
	slices.SortFunc(works, func(a, b eventWork) int { return cmp.Compare(a.id, b.id) })
	for _, w := range works {
		ids = append(ids, w.id)
		demands = append(demands, w.demand)
	}

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	defer rollback(conn) // a no-op after the commit

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(lockBatchEvents, ids)
	if len(keys) > 0 {
		b.Queue(findIdempotentMany, keyVisitors, keys)
	}
	b.Queue(releaseEventsExpired, ids, demands, now, releaseChunk)
	b.Queue(visitorTotalsMany, pairEvents, pairVisitors, now)
	b.Queue(roomEntriesMany, pairEvents, pairVisitors)
	st, err := readBatchState(conn.SendBatch(ctx, b), len(keys) > 0, now)
	if err != nil {
		return nil, err
	}
	for k := range works {
		w := &works[k]
		w.event = st.events[w.id]
		w.released, w.more = st.released[w.id].n, st.released[w.id].full
		if w.event != nil && w.more && w.event.TicketQuantity+w.released < w.demand {
			more, err := releaseMore(ctx, conn, w.id, now, w.demand-w.released)
			if err != nil {
				return nil, err
			}
			w.released += more
		}
	}

	// Decide each event's requests in order, as if each were a Reserve of
	// its own. Idempotency keys belong to the visitor across events, so
	// a key taken earlier in the transaction counts for every event.
	var (
		inserts  []inserted
		firstFor = map[idemKey]*ticketrush.Reservation{} // key → reservation made with it in this transaction
		repeats  []inserted                              // requests answered with firstFor's reservation
		stockIDs []int64
		deltas   []int64
	)
	for k := range works {
		w := &works[k]
		e := w.event
		if e == nil {
			for i := range w.results {
				if w.results[i].Err == nil {
					w.results[i].Err = errEventNotFound()
				}
			}
			continue
		}
		stock := e.TicketQuantity + w.released
		var taken int64
		expires := ticketrush.HoldUntil(now, e)
		for i, r := range w.reqs {
			if w.results[i].Err != nil {
				continue
			}
			key := idemKey{r.VisitorToken, r.IdempotencyKey}
			if r.IdempotencyKey != "" {
				if prev, ok := st.previous[key]; ok {
					if r.SameBody(prev) {
						w.results[i].Reservation = clone(prev)
					} else {
						w.results[i].Err = ticketrush.ErrIdempotencyKeyReused()
					}
					continue
				}
				if prev, ok := firstFor[key]; ok {
					if r.SameBody(prev) {
						repeats = append(repeats, inserted{k, i})
					} else {
						w.results[i].Err = ticketrush.ErrIdempotencyKeyReused()
					}
					continue
				}
			}
			ev := evVisitor{e.ID, r.VisitorToken}
			var pass *ticketrush.QueueEntry
			if en := st.entries[ev]; en != nil {
				pass = &en.e
			}
			if err := admissionOf(e, now, r, pass); err != nil {
				w.results[i].Err = err
				continue
			}
			if err := ticketrush.Decide(e, now, r, stock, st.held[ev]); err != nil {
				w.results[i].Err = err
				continue
			}
			if e.WaitingRoom != nil {
				// The pass is used: a second request with it in this batch
				// is refused as CheckAdmission refuses a used one.
				pass.ReservationID = -1
			}
			stock -= r.Amount
			taken += r.Amount
			st.held[ev] += r.Amount
			res := &ticketrush.Reservation{
				EventID:        e.ID,
				UserUID:        r.VisitorToken,
				Status:         ticketrush.StatusReserved,
				Amount:         r.Amount,
				ExpiresAt:      expires,
				CreatedAt:      now,
				UpdatedAt:      now,
				IdempotencyKey: r.IdempotencyKey,
			}
			w.results[i].Reservation = res
			inserts = append(inserts, inserted{k, i})
			if r.IdempotencyKey != "" {
				firstFor[key] = res
			}
		}
		if w.released > 0 || taken > 0 {
			stockIDs = append(stockIDs, e.ID)
			deltas = append(deltas, w.released-taken)
		}
	}

	b = &pgx.Batch{}
	if len(stockIDs) > 0 {
		b.Queue(addStocks, stockIDs, deltas, now)
	}
	if len(inserts) > 0 {
		req := func(in inserted) ticketrush.ReserveRequest { return works[in.w].reqs[in.i] }
		slices.SortStableFunc(inserts, func(x, y inserted) int {
			rx, ry := req(x), req(y)
			return cmp.Or(strings.Compare(rx.VisitorToken, ry.VisitorToken),
				strings.Compare(rx.IdempotencyKey, ry.IdempotencyKey))
		})
		n := len(inserts)
		events := make([]int64, n)
		users := make([]string, n)
		amounts := make([]int64, n)
		ikeys := make([]string, n)
		admissions := make([]int64, n)
		expires := make([]time.Time, n)
		for j, in := range inserts {
			r := req(in)
			res := works[in.w].results[in.i].Reservation
			events[j], users[j], amounts[j], ikeys[j], expires[j] = res.EventID, r.VisitorToken, r.Amount, r.IdempotencyKey, res.ExpiresAt
			if works[in.w].event.WaitingRoom != nil {
				admissions[j] = r.Admission
			}
		}
		b.Queue(insertReservations, events, users, amounts, ikeys, admissions, expires, now)
	}
	b.Queue("COMMIT")
	if conn.Conn().IsClosed() {
		return nil, pgconn.ErrConnClosed
	}
	if err := writeBatch(ctx, conn, b, len(stockIDs) > 0, works, inserts); err != nil {
		return nil, afterCommitSent(err)
	}
	for _, rep := range repeats {
		w := &works[rep.w]
		r := w.reqs[rep.i]
		w.results[rep.i].Reservation = clone(firstFor[idemKey{r.VisitorToken, r.IdempotencyKey}])
	}
	return out, nil
}

// batchState is what the first round trip of a transaction reads.
type batchState struct {
	events   map[int64]*ticketrush.Event
	previous map[idemKey]*ticketrush.Reservation
	released map[int64]releasedHolds
	held     map[evVisitor]int64
	entries  map[evVisitor]*entry // latest queue entries, for events with a room
}

// releasedHolds is what releaseEventsExpired did for one event.
type releasedHolds struct {
	n    int64
	full bool // the chunk was full: more may be left
}

func readBatchState(br pgx.BatchResults, withKeys bool, now time.Time) (*batchState, error) {
	st, err := func() (*batchState, error) {
		st := &batchState{
			events:   map[int64]*ticketrush.Event{},
			previous: map[idemKey]*ticketrush.Reservation{},
			released: map[int64]releasedHolds{},
			held:     map[evVisitor]int64{},
			entries:  map[evVisitor]*entry{},
		}
		if _, err := br.Exec(); err != nil {
			return nil, err
		}
		rows, _ := br.Query()
		evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*ticketrush.Event, error) {
			return scanEvent(row)
		})
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			st.events[e.ID] = e
		}
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
		var (
			id   int64
			rh   releasedHolds
			user string
			n    int64
		)
		rows, _ = br.Query()
		if _, err := pgx.ForEachRow(rows, []any{&id, &rh.n, &rh.full}, func() error {
			st.released[id] = rh
			return nil
		}); err != nil {
			return nil, err
		}
		rows, _ = br.Query()
		if _, err := pgx.ForEachRow(rows, []any{&id, &user, &n}, func() error {
			st.held[evVisitor{id, user}] = n
			return nil
		}); err != nil {
			return nil, err
		}
		rows, _ = br.Query()
		for rows.Next() {
			en, err := scanEventEntry(now, rows)
			if err != nil {
				rows.Close()
				return nil, err
			}
			st.entries[evVisitor{en.e.EventID, en.e.Visitor}] = en
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

// scanEventEntry scans a row of roomEntriesMany: the event id, then an
// entry.
func scanEventEntry(now time.Time, rows pgx.Rows) (*entry, error) {
	var eventID int64
	en, err := scanEntry(0, now, prefixed{rows, &eventID})
	if err != nil {
		return nil, err
	}
	en.e.EventID = eventID
	return en, nil
}

// prefixed scans a row whose first column is read into first and the
// rest as the wrapped scanner's caller asks.
type prefixed struct {
	row   pgx.Row
	first any
}

func (p prefixed) Scan(dest ...any) error {
	return p.row.Scan(append([]any{p.first}, dest...)...)
}

// writeBatch sends the second round trip of a transaction and fills in the
// ids of the inserted reservations.
func writeBatch(ctx context.Context, conn *pgxpool.Conn, b *pgx.Batch, withStock bool,
	works []eventWork, inserts []inserted) error {
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
				in := inserts[ord-1]
				works[in.w].results[in.i].Reservation.ID = id
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
