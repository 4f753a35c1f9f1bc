package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

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
// write transaction and so one fsync, whatever events they are for. Each
// event takes a fixed number of statements whatever its batch's size: read
// the event, look up the batch's idempotency keys, release expired holds
// (only if the batch asks for more than the stock), load the batch's
// visitors' totals (only with a per-visitor limit), then one stock update
// and one insert of every accepted request. The decisions in between are
// made in Go, in request order, with the same Decide that Reserve uses.
// SQLite has one writer at a time, so the order of the events within the
// transaction does not matter for locking.
func (s *Store) ReserveBatches(ctx context.Context, batches []ticketrush.EventBatch) ([][]ticketrush.ReserveResult, error) {
	if err := ticketrush.CheckBatches(batches); err != nil {
		return nil, err
	}
	out := make([][]ticketrush.ReserveResult, len(batches))
	any := false
	for i, b := range batches {
		out[i] = make([]ticketrush.ReserveResult, len(b.Reqs))
		any = any || len(b.Reqs) > 0
	}
	if !any {
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
	wrote := false
	for i, b := range batches {
		if len(b.Reqs) == 0 {
			continue
		}
		w, err := s.reserveEvent(ctx, tx, st, now, b.EventID, b.Reqs, out[i])
		if err != nil {
			return nil, err
		}
		wrote = wrote || w
	}
	if !wrote {
		// Nothing to write: the rollback costs no fsync.
		return out, nil
	}
	if err := s.commit(ctx, tx); err != nil {
		return nil, err
	}
	return out, nil
}

// reserveEvent decides one event's batch inside the write transaction tx,
// filling results, and writes what it decided. It reports whether it wrote
// anything.
func (s *Store) reserveEvent(ctx context.Context, tx *sql.Tx, st *statements, now time.Time, eventID int64,
	reqs []ticketrush.ReserveRequest, results []ticketrush.ReserveResult) (bool, error) {
	todo := make([]ticketrush.ReserveRequest, len(reqs))
	for i, r := range reqs {
		if r.EventID != eventID {
			results[i].Err = fmt.Errorf("sqlite: request for event %d in a batch for event %d", r.EventID, eventID)
			continue
		}
		todo[i], results[i].Err = normalize(r)
	}

	nowText := formatTime(now)
	e, err := scanEvent(tx.StmtContext(ctx, st.event).QueryRowContext(ctx, eventID))
	if errors.Is(err, sql.ErrNoRows) {
		for i := range results {
			if results[i].Err == nil {
				results[i].Err = errEventNotFound()
			}
		}
		return false, nil
	}
	if err != nil {
		return false, dbError(ctx, err)
	}
	onSale := e.SaleStartsAt == nil || !now.Before(*e.SaleStartsAt)
	// Reservations made before this batch under one of its keys.
	prior := map[visitorKey]*ticketrush.Reservation{}
	var keys [][2]string
	for i, r := range todo {
		if results[i].Err == nil && r.IdempotencyKey != "" {
			keys = append(keys, [2]string{r.VisitorToken, r.IdempotencyKey})
		}
	}
	if len(keys) > 0 {
		if err := loadIdempotent(ctx, tx.StmtContext(ctx, st.idempotentMany), keys, prior); err != nil {
			return false, dbError(ctx, err)
		}
	}

	stock := e.TicketQuantity
	stockChanged := false
	if onSale {
		var demand int64
		for i, r := range todo {
			if results[i].Err == nil && prior[visitorKey{r.VisitorToken, r.IdempotencyKey}] == nil {
				demand += r.Amount
			}
		}
		if demand > stock {
			n, err := releaseEvent(ctx, tx.StmtContext(ctx, st.releaseEvent), e.ID, nowText, demand-stock)
			if err != nil {
				return false, dbError(ctx, err)
			}
			stock += n
			stockChanged = n > 0
		}
	}

	// The batch's visitors' queue entries, when the event has a waiting
	// room.
	var entries map[string]*entry
	if e.WaitingRoom != nil && onSale && !e.SaleClosed {
		var visitors []string
		seen := map[string]bool{}
		for i, r := range todo {
			if results[i].Err == nil && !seen[r.VisitorToken] {
				seen[r.VisitorToken] = true
				visitors = append(visitors, r.VisitorToken)
			}
		}
		if entries, err = loadEntries(ctx, tx.StmtContext(ctx, st.entries), e.ID, visitors); err != nil {
			return false, dbError(ctx, err)
		}
	}

	held := map[string]int64{}
	if onSale && e.MaxPerVisitor > 0 {
		if err := loadHeld(ctx, tx.StmtContext(ctx, st.visitorHeldMany), e.ID, nowText, todo, results, held); err != nil {
			return false, dbError(ctx, err)
		}
	}

	// Decide in order, as consecutive Reserves would. A key seen earlier in
	// the batch answers like a key seen in the database, but only if that
	// earlier request succeeded: a refused one stored nothing.
	expiresAt := ticketrush.HoldUntil(now, e)
	made := map[visitorKey]*ticketrush.Reservation{}
	var rows [][4]any
	var uses [][2]int64
	var nextID int64
	for i, r := range todo {
		if results[i].Err != nil {
			continue
		}
		k := visitorKey{r.VisitorToken, r.IdempotencyKey}
		if r.IdempotencyKey != "" {
			prev := prior[k]
			if prev == nil {
				prev = made[k]
			}
			if prev != nil {
				if r.SameBody(prev) {
					c := *prev
					results[i].Reservation = &c
				} else {
					results[i].Err = ticketrush.ErrIdempotencyKeyReused()
				}
				continue
			}
		}
		en := entries[r.VisitorToken]
		if err := admissionCheck(e, en, now, r); err != nil {
			results[i].Err = err
			continue
		}
		if err := ticketrush.Decide(e, now, r, stock, held[r.VisitorToken]); err != nil {
			results[i].Err = err
			continue
		}
		if nextID == 0 {
			// The write lock is held, so the ids after the largest one
			// are this batch's to take.
			var maxID int64
			if err := tx.StmtContext(ctx, st.maxReservation).QueryRowContext(ctx).Scan(&maxID); err != nil {
				return false, dbError(ctx, err)
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
		stock -= r.Amount
		held[r.VisitorToken] += r.Amount
		if r.IdempotencyKey != "" {
			made[k] = res
		}
		results[i].Reservation = res
		rows = append(rows, [4]any{res.ID, res.UserUID, res.Amount, nullable(res.IdempotencyKey)})
		if e.WaitingRoom != nil && en != nil {
			// Used: a second request of the batch with the same pass
			// is refused.
			en.q.ReservationID = res.ID
			uses = append(uses, [2]int64{en.id, res.ID})
		}
	}

	if len(rows) == 0 && !stockChanged {
		return false, nil
	}
	if _, err := tx.StmtContext(ctx, st.setStock).ExecContext(ctx, stock, nowText, e.ID); err != nil {
		return false, dbError(ctx, err)
	}
	if len(rows) > 0 {
		data, err := json.Marshal(rows)
		if err != nil {
			return false, err
		}
		_, err = tx.StmtContext(ctx, st.insertReservations).ExecContext(ctx,
			string(data), e.ID, formatTime(expiresAt), nowText, limited(e))
		if err != nil {
			return false, dbError(ctx, err)
		}
	}
	if len(uses) > 0 {
		if err := stmtJSON(ctx, tx.StmtContext(ctx, st.useAdmissions), uses); err != nil {
			return false, dbError(ctx, err)
		}
	}
	return true, nil
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

// loadHeld fills held with the tickets each visitor of the batch holds
// (unexpired) or bought for the event.
func loadHeld(ctx context.Context, stmt *sql.Stmt, eventID int64, now string,
	todo []ticketrush.ReserveRequest, results []ticketrush.ReserveResult, held map[string]int64) error {
	var visitors []string
	seen := map[string]bool{}
	for i, r := range todo {
		if results[i].Err == nil && !seen[r.VisitorToken] {
			seen[r.VisitorToken] = true
			visitors = append(visitors, r.VisitorToken)
		}
	}
	data, err := json.Marshal(visitors)
	if err != nil {
		return err
	}
	rows, err := stmt.QueryContext(ctx, eventID, string(data), now)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var visitor string
		var n int64
		if err := rows.Scan(&visitor, &n); err != nil {
			return err
		}
		held[visitor] = n
	}
	return rows.Err()
}
