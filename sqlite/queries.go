package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// All of the store's SQL is here. Statements that take a whole batch pass it
// as one JSON array and read it back with json_each, so one prepared
// statement serves every batch size.

const eventColumns = `e.id, e.name, e.ticket_quantity, e.capacity, e.hold_seconds,
	e.max_per_visitor, e.sale_starts_at, e.created_at, e.updated_at`

const reservationColumns = `r.id, r.event_id, r.user_uid, r.status, r.amount,
	r.expires_at, r.created_at, r.updated_at, COALESCE(r.idempotency_key, '')`

const (
	sqlEvent = `SELECT ` + eventColumns + ` FROM events AS e WHERE e.id = ?`

	sqlEvents = `SELECT ` + eventColumns + ` FROM events AS e
		ORDER BY e.created_at DESC, e.id DESC`

	sqlInsertEvent = `INSERT INTO events (name, ticket_quantity, capacity, hold_seconds,
		max_per_visitor, sale_starts_at, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

	// sqlStats counts in one statement, so in one snapshot of the database.
	sqlStats = `SELECT e.capacity, e.ticket_quantity,
		COALESCE(SUM(r.amount) FILTER (WHERE r.status = 'reserved'), 0),
		COALESCE(SUM(r.amount) FILTER (WHERE r.status = 'purchased'), 0),
		COALESCE(SUM(r.amount) FILTER (WHERE r.status = 'expired'), 0),
		COALESCE(SUM(r.amount) FILTER (WHERE r.status = 'cancelled'), 0)
		FROM events AS e LEFT JOIN reservations AS r ON r.event_id = e.id
		WHERE e.id = ?
		GROUP BY e.id`

	// sqlSetStock writes the stock computed in Go: the transaction holds the
	// write lock, so no one else changed it since it was read.
	sqlSetStock = `UPDATE events SET ticket_quantity = ?, updated_at = ? WHERE id = ?`

	sqlAddStock = `UPDATE events SET ticket_quantity = ticket_quantity + ?, updated_at = ?
		WHERE id = ?`

	sqlReservation = `SELECT ` + reservationColumns + ` FROM reservations AS r
		WHERE r.id = ? AND r.user_uid = ?`

	sqlIdempotent = `SELECT ` + reservationColumns + ` FROM reservations AS r
		WHERE r.user_uid = ? AND r.idempotency_key = ?`

	// sqlIdempotentMany takes [[user_uid, key], …].
	sqlIdempotentMany = `SELECT ` + reservationColumns + `
		FROM json_each(?) AS j CROSS JOIN reservations AS r
		ON r.user_uid = j.value ->> 0 AND r.idempotency_key = j.value ->> 1`

	// sqlVisitorHeld is what counts against max_per_visitor: unexpired holds
	// and purchases. ?3 is now. It is only asked about events with a limit,
	// whose rows all have visitor_limited = 1: the term lets it use the
	// partial index.
	sqlVisitorHeld = `SELECT COALESCE(SUM(amount), 0) FROM reservations
		WHERE visitor_limited = 1 AND event_id = ?1 AND user_uid = ?2
		AND (status = 'purchased' OR (status = 'reserved' AND expires_at > ?3))`

	// sqlVisitorHeldMany takes a JSON array of user_uids.
	sqlVisitorHeldMany = `SELECT user_uid, SUM(amount) FROM reservations
		WHERE visitor_limited = 1 AND event_id = ?1 AND user_uid IN (SELECT value FROM json_each(?2))
		AND (status = 'purchased' OR (status = 'reserved' AND expires_at > ?3))
		GROUP BY user_uid`

	sqlInsertReservation = `INSERT INTO reservations (user_uid, event_id, status, amount,
		expires_at, created_at, updated_at, idempotency_key, visitor_limited)
		VALUES (?, ?, 'reserved', ?, ?, ?, ?, ?, ?)`

	// sqlInsertReservations takes [[id, user_uid, amount, key or null], …]
	// and the columns every row shares. The ids are chosen by the caller,
	// which holds the write lock, so no RETURNING has to be matched back to
	// the requests.
	sqlInsertReservations = `INSERT INTO reservations (id, user_uid, event_id, status, amount,
		expires_at, created_at, updated_at, idempotency_key, visitor_limited)
		SELECT j.value ->> 0, j.value ->> 1, ?2, 'reserved', j.value ->> 2,
			?3, ?4, ?4, j.value ->> 3, ?5
		FROM json_each(?1) AS j`

	sqlMaxReservationID = `SELECT COALESCE(MAX(id), 0) FROM reservations`

	sqlSetStatus = `UPDATE reservations SET status = ?, updated_at = ? WHERE id = ?`

	// sqlReleaseEvent releases one event's expired holds; ?2 is now.
	sqlReleaseEvent = `UPDATE reservations SET status = 'expired', updated_at = ?2
		WHERE event_id = ?1 AND status = 'reserved' AND expires_at <= ?2
		RETURNING amount`

	// sqlAnyExpired lets the sweep skip the write lock when there is
	// nothing to release.
	sqlAnyExpired = `SELECT EXISTS (SELECT 1 FROM reservations
		WHERE status = 'reserved' AND expires_at <= ?)`

	// sqlReleaseExpired releases the oldest ?2 expired holds of all events;
	// ?1 is now.
	sqlReleaseExpired = `UPDATE reservations SET status = 'expired', updated_at = ?1
		WHERE id IN (SELECT id FROM reservations
			WHERE status = 'reserved' AND expires_at <= ?1
			ORDER BY expires_at LIMIT ?2)
		RETURNING event_id, amount`
)

// statements are the store's prepared statements: those used inside write
// transactions on the write pool, the others on the read pool.
type statements struct {
	event, insertEvent, setStock, addStock                *sql.Stmt
	reservation, idempotent, idempotentMany               *sql.Stmt
	visitorHeld, visitorHeldMany                          *sql.Stmt
	insertReservation, insertReservations, maxReservation *sql.Stmt
	setStatus, releaseEvent, releaseExpired               *sql.Stmt

	readEvent, readEvents, readStats, readReservation, readAnyExpired *sql.Stmt
}

// statements returns the prepared statements, preparing them on first use.
// It must not be called inside a write transaction: preparing on the write
// pool needs its only connection.
func (s *Store) statements(ctx context.Context) (*statements, error) {
	if st := s.st.Load(); st != nil {
		return st, nil
	}
	s.stMu.Lock()
	defer s.stMu.Unlock()
	if st := s.st.Load(); st != nil {
		return st, nil
	}
	st := &statements{}
	for _, q := range []struct {
		db    *sql.DB
		dst   **sql.Stmt
		query string
	}{
		{s.wdb, &st.event, sqlEvent},
		{s.wdb, &st.insertEvent, sqlInsertEvent},
		{s.wdb, &st.setStock, sqlSetStock},
		{s.wdb, &st.addStock, sqlAddStock},
		{s.wdb, &st.reservation, sqlReservation},
		{s.wdb, &st.idempotent, sqlIdempotent},
		{s.wdb, &st.idempotentMany, sqlIdempotentMany},
		{s.wdb, &st.visitorHeld, sqlVisitorHeld},
		{s.wdb, &st.visitorHeldMany, sqlVisitorHeldMany},
		{s.wdb, &st.insertReservation, sqlInsertReservation},
		{s.wdb, &st.insertReservations, sqlInsertReservations},
		{s.wdb, &st.maxReservation, sqlMaxReservationID},
		{s.wdb, &st.setStatus, sqlSetStatus},
		{s.wdb, &st.releaseEvent, sqlReleaseEvent},
		{s.wdb, &st.releaseExpired, sqlReleaseExpired},
		{s.rdb, &st.readEvent, sqlEvent},
		{s.rdb, &st.readEvents, sqlEvents},
		{s.rdb, &st.readStats, sqlStats},
		{s.rdb, &st.readReservation, sqlReservation},
		{s.rdb, &st.readAnyExpired, sqlAnyExpired},
	} {
		stmt, err := q.db.PrepareContext(ctx, q.query)
		if err != nil {
			st.close()
			return nil, dbError(ctx, fmt.Errorf("sqlite: prepare: %w", err))
		}
		*q.dst = stmt
	}
	s.st.Store(st)
	return st, nil
}

func (st *statements) close() error {
	var errs []error
	for _, stmt := range []*sql.Stmt{
		st.event, st.insertEvent, st.setStock, st.addStock,
		st.reservation, st.idempotent, st.idempotentMany,
		st.visitorHeld, st.visitorHeldMany,
		st.insertReservation, st.insertReservations, st.maxReservation,
		st.setStatus, st.releaseEvent, st.releaseExpired,
		st.readEvent, st.readEvents, st.readStats, st.readReservation, st.readAnyExpired,
	} {
		if stmt != nil {
			errs = append(errs, stmt.Close())
		}
	}
	return errors.Join(errs...)
}
