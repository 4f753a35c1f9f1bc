package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strings"

	"github.com/ticketrush/ticketrush"
)

// Reserve is the original's strategy: one write transaction per request.
// BEGIN IMMEDIATE takes the database's write lock before the event is read,
// as the original's SELECT … FOR UPDATE locked the event row, so the stock
// read is the stock written back.
func (s *Store) Reserve(ctx context.Context, r ticketrush.ReserveRequest) (*ticketrush.Reservation, error) {
	r, err := normalize(r)
	if err != nil {
		return nil, err
	}
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
	nowText := formatTime(now)
	e, err := scanEvent(tx.StmtContext(ctx, st.event).QueryRowContext(ctx, r.EventID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errEventNotFound()
	}
	if err != nil {
		return nil, dbError(ctx, err)
	}

	if r.IdempotencyKey != "" {
		prev, err := scanReservation(tx.StmtContext(ctx, st.idempotent).QueryRowContext(ctx, r.VisitorToken, r.IdempotencyKey))
		switch {
		case err == nil && r.SameBody(prev):
			return prev, nil
		case err == nil:
			return nil, ticketrush.ErrIdempotencyKeyReused()
		case !errors.Is(err, sql.ErrNoRows):
			return nil, dbError(ctx, err)
		}
	}

	// The waiting room: the visitor's pass must be for its current,
	// unused, unexpired admission. Nothing is written yet, so a refusal
	// rolls back for free.
	var en *entry
	if e.WaitingRoom != nil {
		en, err = scanEntry(tx.StmtContext(ctx, st.entry).QueryRowContext(ctx, e.ID, r.VisitorToken), e.ID)
		if errors.Is(err, sql.ErrNoRows) {
			en, err = nil, nil
		}
		if err != nil {
			return nil, dbError(ctx, err)
		}
		if err := admissionCheck(e, en, now, r); err != nil {
			return nil, err
		}
	}

	stock := e.TicketQuantity
	released := false
	if stock < r.Amount {
		n, err := releaseEvent(ctx, tx.StmtContext(ctx, st.releaseEvent), e.ID, nowText, r.Amount-stock)
		if err != nil {
			return nil, dbError(ctx, err)
		}
		stock += n
		released = n > 0
	}

	var held int64
	if e.MaxPerVisitor > 0 {
		err := tx.StmtContext(ctx, st.visitorHeld).QueryRowContext(ctx, e.ID, r.VisitorToken, nowText).Scan(&held)
		if err != nil {
			return nil, dbError(ctx, err)
		}
	}

	if decision := ticketrush.Decide(e, now, r, stock, held); decision != nil {
		// Holds released on the way stay released: they had expired
		// whatever this request's fate.
		if released {
			if _, err := tx.StmtContext(ctx, st.setStock).ExecContext(ctx, stock, nowText, e.ID); err != nil {
				return nil, dbError(ctx, err)
			}
			if err := s.commit(ctx, tx); err != nil {
				return nil, err
			}
		}
		return nil, decision
	}

	if _, err := tx.StmtContext(ctx, st.setStock).ExecContext(ctx, stock-r.Amount, nowText, e.ID); err != nil {
		return nil, dbError(ctx, err)
	}
	res := &ticketrush.Reservation{
		EventID:        e.ID,
		UserUID:        r.VisitorToken,
		Status:         ticketrush.StatusReserved,
		Amount:         r.Amount,
		ExpiresAt:      ticketrush.HoldUntil(now, e),
		CreatedAt:      now,
		UpdatedAt:      now,
		IdempotencyKey: r.IdempotencyKey,
	}
	result, err := tx.StmtContext(ctx, st.insertReservation).ExecContext(ctx, res.UserUID, res.EventID,
		res.Amount, formatTime(res.ExpiresAt), nowText, nowText, nullable(res.IdempotencyKey), limited(e))
	if err != nil {
		return nil, dbError(ctx, err)
	}
	if res.ID, err = result.LastInsertId(); err != nil {
		return nil, dbError(ctx, err)
	}
	if en != nil {
		// The pass is used by this hold.
		if err := stmtJSON(ctx, tx.StmtContext(ctx, st.useAdmissions), [][2]int64{{en.id, res.ID}}); err != nil {
			return nil, dbError(ctx, err)
		}
	}
	if err := s.commit(ctx, tx); err != nil {
		return nil, err
	}
	return res, nil
}

// visitorKey identifies an Idempotency-Key: keys are per visitor.
type visitorKey struct{ visitor, key string }

// ReserveBatch is group commit for one event: ReserveBatches with one
// batch.
func (s *Store) ReserveBatch(ctx context.Context, eventID int64, reqs []ticketrush.ReserveRequest) ([]ticketrush.ReserveResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	out, err := s.ReserveBatches(ctx, []ticketrush.EventBatch{{EventID: eventID, Reqs: reqs}})
	if err != nil {
		return nil, err
	}
	return out[0], nil
}

// ReserveBatches is group commit: the requests of every batch share one
// write transaction and so one fsync, whatever events they are for. The
// transaction does a fixed number of statements whatever the number of
// events and requests: read the events, look up the idempotency keys, load
// the visitors' totals for events with a per-visitor limit, then one stock
// update and one insert of every accepted request. Only an event short of
// stock (its expired holds to release) or with a waiting room (its
// visitors' queue entries) adds statements of its own. The decisions in
// between are made in Go, each event's requests in order, with the same
// Decide that Reserve uses. SQLite has one writer at a time, so the order
// of the events does not matter for locking.
func (s *Store) ReserveBatches(ctx context.Context, batches []ticketrush.EventBatch) ([][]ticketrush.ReserveResult, error) {
	if err := ticketrush.CheckBatches(batches); err != nil {
		return nil, err
	}
	out := make([][]ticketrush.ReserveResult, len(batches))
	works := make([]eventWork, 0, len(batches))
	var ids []int64
	for n, b := range batches {
		out[n] = make([]ticketrush.ReserveResult, len(b.Reqs))
		w := eventWork{id: b.EventID, results: out[n], todo: make([]ticketrush.ReserveRequest, len(b.Reqs))}
		valid := false
		for i, r := range b.Reqs {
			if r.EventID != b.EventID {
				w.results[i].Err = fmt.Errorf("sqlite: request for event %d in a batch for event %d", r.EventID, b.EventID)
				continue
			}
			w.todo[i], w.results[i].Err = normalize(r)
			valid = valid || w.results[i].Err == nil
		}
		if valid {
			works = append(works, w)
			ids = append(ids, b.EventID)
		}
	}
	if len(works) == 0 {
		return out, nil
	}

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
	nowText := formatTime(now)

	events, err := loadEvents(ctx, tx.StmtContext(ctx, st.eventsMany), ids)
	if err != nil {
		return nil, dbError(ctx, err)
	}

	// Reservations made before this transaction under one of its keys.
	// Keys belong to the visitor across events, so they are looked up
	// and remembered for the whole transaction.
	prior := map[visitorKey]*ticketrush.Reservation{}
	var keys [][2]string
	for _, w := range works {
		for i, r := range w.todo {
			if w.results[i].Err == nil && r.IdempotencyKey != "" {
				keys = append(keys, [2]string{r.VisitorToken, r.IdempotencyKey})
			}
		}
	}
	if len(keys) > 0 {
		if err := loadIdempotent(ctx, tx.StmtContext(ctx, st.idempotentMany), keys, prior); err != nil {
			return nil, dbError(ctx, err)
		}
	}

	// Each event's stock, expired holds released where the demand needs
	// them, and queue entries where it has a waiting room.
	var pairs [][2]any // (event, visitor) of events with a limit
	for k := range works {
		w := &works[k]
		w.event = events[w.id]
		e := w.event
		if e == nil {
			for i := range w.results {
				if w.results[i].Err == nil {
					w.results[i].Err = errEventNotFound()
				}
			}
			continue
		}
		w.stock = e.TicketQuantity
		onSale := e.SaleStartsAt == nil || !now.Before(*e.SaleStartsAt)
		if !onSale {
			continue
		}
		var demand int64
		var visitors []string
		seen := map[string]bool{}
		for i, r := range w.todo {
			if w.results[i].Err != nil {
				continue
			}
			if prior[visitorKey{r.VisitorToken, r.IdempotencyKey}] == nil {
				demand += r.Amount
			}
			if !seen[r.VisitorToken] {
				seen[r.VisitorToken] = true
				visitors = append(visitors, r.VisitorToken)
			}
		}
		if demand > w.stock {
			n, err := releaseEvent(ctx, tx.StmtContext(ctx, st.releaseEvent), e.ID, nowText, demand-w.stock)
			if err != nil {
				return nil, dbError(ctx, err)
			}
			w.stock += n
			w.stockChanged = n > 0
		}
		if e.WaitingRoom != nil && !e.SaleClosed {
			if w.entries, err = loadEntries(ctx, tx.StmtContext(ctx, st.entries), e.ID, visitors); err != nil {
				return nil, dbError(ctx, err)
			}
		}
		if e.MaxPerVisitor > 0 {
			for _, v := range visitors {
				pairs = append(pairs, [2]any{e.ID, v})
			}
		}
	}
	held := map[evVisitor]int64{}
	if len(pairs) > 0 {
		if err := loadHeld(ctx, tx.StmtContext(ctx, st.visitorHeldMany), pairs, nowText, held); err != nil {
			return nil, dbError(ctx, err)
		}
	}

	// Decide each event's requests in order, as consecutive Reserves would.
	// A key seen earlier in the transaction answers like a key seen in the
	// database, but only if that earlier request succeeded: a refused one
	// stored nothing.
	made := map[visitorKey]*ticketrush.Reservation{}
	var (
		rows   []any // insertRowArgs per reservation
		uses   [][2]int64
		stocks [][2]int64
		nextID int64
	)
	for k := range works {
		w := &works[k]
		e := w.event
		if e == nil {
			continue
		}
		expiresAt := ticketrush.HoldUntil(now, e)
		expiresText := formatTime(expiresAt)
		for i, r := range w.todo {
			if w.results[i].Err != nil {
				continue
			}
			key := visitorKey{r.VisitorToken, r.IdempotencyKey}
			if r.IdempotencyKey != "" {
				prev := prior[key]
				if prev == nil {
					prev = made[key]
				}
				if prev != nil {
					if r.SameBody(prev) {
						c := *prev
						w.results[i].Reservation = &c
					} else {
						w.results[i].Err = ticketrush.ErrIdempotencyKeyReused()
					}
					continue
				}
			}
			en := w.entries[r.VisitorToken]
			if err := admissionCheck(e, en, now, r); err != nil {
				w.results[i].Err = err
				continue
			}
			ev := evVisitor{e.ID, r.VisitorToken}
			if err := ticketrush.Decide(e, now, r, w.stock, held[ev]); err != nil {
				w.results[i].Err = err
				continue
			}
			if nextID == 0 {
				// The write lock is held, so the ids after the largest
				// one are this transaction's to take.
				var maxID int64
				if err := tx.StmtContext(ctx, st.maxReservation).QueryRowContext(ctx).Scan(&maxID); err != nil {
					return nil, dbError(ctx, err)
				}
				nextID = maxID + 1
			}
			res := &ticketrush.Reservation{
				ID:             nextID,
				EventID:        e.ID,
				UserUID:        r.VisitorToken,
				Status:         ticketrush.StatusReserved,
				Amount:         r.Amount,
				ExpiresAt:      expiresAt,
				CreatedAt:      now,
				UpdatedAt:      now,
				IdempotencyKey: r.IdempotencyKey,
			}
			nextID++
			w.stock -= r.Amount
			w.stockChanged = true
			held[ev] += r.Amount
			if r.IdempotencyKey != "" {
				made[key] = res
			}
			w.results[i].Reservation = res
			rows = append(rows, res.ID, res.UserUID, e.ID, res.Amount, expiresText,
				nullable(res.IdempotencyKey), limited(e), nowText, nowText)
			if e.WaitingRoom != nil && en != nil {
				// Used: a second request of the batch with the same
				// pass is refused.
				en.q.ReservationID = res.ID
				uses = append(uses, [2]int64{en.id, res.ID})
			}
		}
		if w.stockChanged {
			stocks = append(stocks, [2]int64{e.ID, w.stock})
		}
	}

	if len(stocks) == 0 {
		// Nothing to write: the rollback costs no fsync.
		return out, nil
	}
	if _, err := tx.StmtContext(ctx, st.setStocks).ExecContext(ctx, mustJSON(stocks), nowText); err != nil {
		return nil, dbError(ctx, err)
	}
	if err := insertReservations(ctx, tx, st, rows); err != nil {
		return nil, dbError(ctx, err)
	}
	if len(uses) > 0 {
		if err := stmtJSON(ctx, tx.StmtContext(ctx, st.useAdmissions), uses); err != nil {
			return nil, dbError(ctx, err)
		}
	}
	if err := s.commit(ctx, tx); err != nil {
		return nil, err
	}
	return out, nil
}

// eventWork is one event's part of a ReserveBatches transaction.
type eventWork struct {
	id           int64
	todo         []ticketrush.ReserveRequest // normalized; see results for the refused
	results      []ticketrush.ReserveResult
	event        *ticketrush.Event // nil when it does not exist
	stock        int64
	stockChanged bool
	entries      map[string]*entry
}

// evVisitor is a visitor of one event.
type evVisitor struct {
	event   int64
	visitor string
}

// insertReservations inserts rows (insertRowArgs values a reservation) in
// the fewest statements of st.insertRows: the largest that fits, then the
// largest that fits what is left. Rows go in in order, so ids stay in
// arrival order.
func insertReservations(ctx context.Context, tx *sql.Tx, st *statements, rows []any) error {
	for len(rows) > 0 {
		k := min(bits.Len(uint(len(rows)/insertRowArgs))-1, len(st.insertRows)-1)
		n := insertRowArgs << k
		if _, err := tx.StmtContext(ctx, st.insertRows[k]).ExecContext(ctx, rows[:n]...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	return nil
}

// mustJSON encodes what json.Marshal cannot fail on (numbers, strings,
// nil).
func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// loadEvents reads the events of ids that exist.
func loadEvents(ctx context.Context, stmt *sql.Stmt, ids []int64) (map[int64]*ticketrush.Event, error) {
	rows, err := stmt.QueryContext(ctx, mustJSON(ids))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := make(map[int64]*ticketrush.Event, len(ids))
	for rows.Next() {
		e, err := scanEvent(rows)
		if err != nil {
			return nil, err
		}
		out[e.ID] = e
	}
	return out, rows.Err()
}

// normalize validates a request and puts its visitor token in the stored
// (lower-case) form.
func normalize(r ticketrush.ReserveRequest) (ticketrush.ReserveRequest, error) {
	if err := r.Validate(); err != nil {
		return r, err
	}
	r.VisitorToken = strings.ToLower(r.VisitorToken)
	return r, nil
}

// nullable stores "" as NULL, so the unique index on idempotency keys only
// sees real keys.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// limited is the stored visitor_limited of the event's reservations.
func limited(e *ticketrush.Event) int {
	if e.MaxPerVisitor > 0 {
		return 1
	}
	return 0
}

// releaseChunk bounds the expired holds one statement of the reserve path
// looks at.
const releaseChunk = 100

// releaseEvent releases the event's oldest expired holds inside the
// caller's write transaction until they free need tickets or none is left,
// and returns how many tickets they held. Each statement looks at no more
// than releaseChunk holds, and no more holds are released than needed: the
// sweep releases the rest outside the hot transaction. The caller adds the
// tickets to the stock it writes back.
func releaseEvent(ctx context.Context, stmt *sql.Stmt, eventID int64, now string, need int64) (int64, error) {
	var total int64
	for total < need {
		n, freed, err := releaseChunkOf(ctx, stmt, eventID, now, need-total)
		if err != nil {
			return 0, err
		}
		total += freed
		if n < releaseChunk {
			// Enough, or no expired hold left.
			break
		}
	}
	return total, nil
}

// releaseChunkOf runs one statement of releaseEvent and returns how many
// holds it released and how many tickets they held.
func releaseChunkOf(ctx context.Context, stmt *sql.Stmt, eventID int64, now string, need int64) (int, int64, error) {
	rows, err := stmt.QueryContext(ctx, eventID, now, need, releaseChunk)
	if err != nil {
		return 0, 0, err
	}
	defer rows.Close()
	var (
		n     int
		total int64
	)
	for rows.Next() {
		var amount int64
		if err := rows.Scan(&amount); err != nil {
			return 0, 0, err
		}
		n++
		total += amount
	}
	return n, total, rows.Err()
}

// loadIdempotent adds to prior the reservations stored under keys.
func loadIdempotent(ctx context.Context, stmt *sql.Stmt, keys [][2]string, prior map[visitorKey]*ticketrush.Reservation) error {
	data, err := json.Marshal(keys)
	if err != nil {
		return err
	}
	rows, err := stmt.QueryContext(ctx, string(data))
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanReservation(rows)
		if err != nil {
			return err
		}
		prior[visitorKey{r.UserUID, r.IdempotencyKey}] = r
	}
	return rows.Err()
}

// loadHeld fills held with the tickets each (event, visitor) pair holds
// (unexpired) or bought.
func loadHeld(ctx context.Context, stmt *sql.Stmt, pairs [][2]any, now string, held map[evVisitor]int64) error {
	rows, err := stmt.QueryContext(ctx, mustJSON(pairs), now)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k evVisitor
		var n int64
		if err := rows.Scan(&k.event, &k.visitor, &n); err != nil {
			return err
		}
		held[k] = n
	}
	return rows.Err()
}
