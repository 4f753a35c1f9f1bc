package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// All of the store's SQL is here. Statements that take a whole batch pass it
// as one JSON array and read it back with json_each, so one prepared
// statement serves every batch size.

// eventColumns are read FROM eventsFrom: an event with its waiting room's
// settings, NULL when it has none.
const eventColumns = `e.id, e.name, e.ticket_quantity, e.capacity, e.hold_seconds,
	e.max_per_visitor, e.sale_starts_at, e.created_at, e.updated_at,
	e.max_per_order, e.hidden, e.sale_closed,
	w.admit_per_minute, w.max_active, w.pass_seconds, w.prequeue_opens_at,
	w.challenge_bits, w.paused`

const eventsFrom = ` FROM events AS e LEFT JOIN waiting_rooms AS w ON w.event_id = e.id`

const reservationColumns = `r.id, r.event_id, r.user_uid, r.status, r.amount,
	r.expires_at, r.created_at, r.updated_at, COALESCE(r.idempotency_key, '')`

const (
	sqlEvent = `SELECT ` + eventColumns + eventsFrom + ` WHERE e.id = ?`

	sqlEvents = `SELECT ` + eventColumns + eventsFrom + `
		ORDER BY e.created_at DESC, e.id DESC`

	// nextEventID is above every event id ever given, deleted ones too
	// (see migration 00003). Writes are serialized, so it cannot race.
	nextEventID = `(SELECT MAX(m) + 1 FROM (
		SELECT COALESCE(MAX(id), 0) AS m FROM events
		UNION ALL SELECT COALESCE(MAX(id), 0) FROM retired_event_ids))`

	sqlInsertEvent = `INSERT INTO events (id, name, ticket_quantity, capacity, hold_seconds,
		max_per_visitor, sale_starts_at, created_at, updated_at,
		max_per_order, hidden, sale_closed)
		VALUES (` + nextEventID + `, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)`

	// sqlInsertFirstEvent inserts the event only into an empty table.
	sqlInsertFirstEvent = `INSERT INTO events (id, name, ticket_quantity, capacity, hold_seconds,
		max_per_visitor, sale_starts_at, created_at, updated_at,
		max_per_order, hidden, sale_closed)
		SELECT ` + nextEventID + `, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0
		WHERE NOT EXISTS (SELECT 1 FROM events)`

	// sqlStats counts in one statement, so in one snapshot of the database:
	// the holds through reservations_reserved_event_expires_at, the rest
	// through reservations_settled_event (both partial, see migration 00004).
	sqlStats = `SELECT e.capacity, e.ticket_quantity,
		(SELECT COALESCE(SUM(amount), 0) FROM reservations
			WHERE event_id = e.id AND status = 'reserved'),
		COALESCE(SUM(r.amount) FILTER (WHERE r.status = 'purchased'), 0),
		COALESCE(SUM(r.amount) FILTER (WHERE r.status = 'expired'), 0),
		COALESCE(SUM(r.amount) FILTER (WHERE r.status = 'cancelled'), 0)
		FROM events AS e LEFT JOIN reservations AS r
			ON r.event_id = e.id AND r.status <> 'reserved'
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

	// sqlVisitorHeldMany takes [[event_id, user_uid], …], pairs of events
	// with a limit only (their rows have visitor_limited = 1).
	sqlVisitorHeldMany = `SELECT r.event_id, r.user_uid, SUM(r.amount)
		FROM json_each(?1) AS j CROSS JOIN reservations AS r
		ON r.visitor_limited = 1 AND r.event_id = j.value ->> 0 AND r.user_uid = j.value ->> 1
		WHERE r.status = 'purchased' OR (r.status = 'reserved' AND r.expires_at > ?2)
		GROUP BY r.event_id, r.user_uid`

	// sqlEventsMany reads the events of a JSON array of ids.
	sqlEventsMany = `SELECT ` + eventColumns + eventsFrom + `
		WHERE e.id IN (SELECT value FROM json_each(?))`

	// sqlSetStocks takes [[event_id, stock], …], the stocks computed in Go
	// under the write lock.
	sqlSetStocks = `UPDATE events SET ticket_quantity = j.value ->> 1, updated_at = ?2
		FROM json_each(?1) AS j WHERE events.id = j.value ->> 0`

	sqlInsertReservation = `INSERT INTO reservations (user_uid, event_id, status, amount,
		expires_at, created_at, updated_at, idempotency_key, visitor_limited)
		VALUES (?, ?, 'reserved', ?, ?, ?, ?, ?, ?)`

	sqlMaxReservationID = `SELECT COALESCE(MAX(id), 0) FROM reservations`

	sqlSetStatus = `UPDATE reservations SET status = ?, updated_at = ? WHERE id = ?`

	// sqlReleaseEvent releases the fewest of one event's oldest expired
	// holds that free ?3 tickets, looking at no more than ?4 of them: the
	// inner query takes the next ?4 in expiry order, the running total
	// keeps those needed. ?2 is now.
	sqlReleaseEvent = `UPDATE reservations SET status = 'expired', updated_at = ?2
		WHERE id IN (
			SELECT id FROM (
				SELECT id, SUM(amount) OVER (ORDER BY expires_at, id
					ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - amount AS before
				FROM (SELECT id, amount, expires_at FROM reservations
					WHERE event_id = ?1 AND status = 'reserved' AND expires_at <= ?2
					ORDER BY expires_at, id LIMIT ?4))
			WHERE before < ?3)
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

// insertRowArgs is the number of parameters of each row in
// sqlInsertReservations.
const insertRowArgs = 9

// sqlInsertReservations inserts n reservations in one statement, with per
// row (id, user_uid, event_id, amount, expires_at, idempotency_key or NULL,
// visitor_limited, created_at, updated_at). The ids are chosen by the
// caller, which holds the write lock, so no RETURNING has to be matched
// back to the requests.
//
// Bound parameters rather than a JSON array: reading seven fields back out
// of JSON per row was a tenth of a batched reserve's CPU. Only anonymous
// ones, so the time goes in twice a row: the driver looks up each
// parameter's name when it binds, in a list as long as the named
// parameters, which made one numbered ?1 shared by all rows cost more than
// the JSON did.
//
// OR ROLLBACK: a statement that may fail after writing some of its rows
// keeps a copy of every page it touches, to undo just itself; on a failure
// here the whole transaction is rolled back anyway (the batch is answered
// with the error), so SQLite is told so and keeps no copies.
func sqlInsertReservations(n int) string {
	const row = `(?,?,?,?,?,?,?,'reserved',?,?)`
	var b strings.Builder
	b.WriteString(`INSERT OR ROLLBACK INTO reservations (id, user_uid, event_id, amount, expires_at,
		idempotency_key, visitor_limited, status, created_at, updated_at) VALUES `)
	b.WriteString(row)
	b.WriteString(strings.Repeat(","+row, n-1))
	return b.String()
}

// The waiting room's statements on the hot paths: joins and reserves.
const (
	entryColumns = `q.id, q.visitor, q.attempt, q.state, q.done, COALESCE(q.position, 0),
		q.joined_at, q.admitted_at, q.pass_expires_at, COALESCE(q.reservation_id, 0),
		COALESCE(q.challenge, ''), r.status, r.expires_at`

	// sqlEntry is a visitor's current entry: ?1 event, ?2 visitor.
	sqlEntry = `SELECT ` + entryColumns + `
		FROM queue_entries AS q LEFT JOIN reservations AS r ON r.id = q.reservation_id
		WHERE q.event_id = ?1 AND q.visitor = ?2
		ORDER BY q.attempt DESC LIMIT 1`

	// sqlEntries takes a JSON array of visitors. CROSS JOIN keeps SQLite
	// from scanning the event's whole queue for each of them.
	sqlEntries = `SELECT ` + entryColumns + `
		FROM json_each(?2) AS j
		CROSS JOIN queue_entries AS q ON q.event_id = ?1 AND q.visitor = j.value
			AND q.attempt = (SELECT MAX(attempt) FROM queue_entries
				WHERE event_id = ?1 AND visitor = j.value)
		LEFT JOIN reservations AS r ON r.id = q.reservation_id`

	// sqlInsertEntries takes [[visitor, attempt, state, position or null,
	// challenge or null], …]; the rows are inserted in array order.
	sqlInsertEntries = `INSERT INTO queue_entries (event_id, visitor, attempt, state, position,
		challenge, joined_at)
		SELECT ?1, j.value ->> 0, j.value ->> 1, j.value ->> 2, j.value ->> 3, j.value ->> 4, ?3
		FROM json_each(?2) AS j ORDER BY j.key`

	// sqlExpireEntries takes a JSON array of entry ids.
	sqlExpireEntries = `UPDATE queue_entries SET state = 'expired'
		WHERE id IN (SELECT value FROM json_each(?)) AND state = 'admitted'`

	// sqlUseAdmissions takes [[entry id, reservation id], …].
	sqlUseAdmissions = `UPDATE queue_entries SET reservation_id = j.value ->> 1
		FROM json_each(?) AS j WHERE queue_entries.id = j.value ->> 0`

	sqlRoom = `SELECT prequeue_closed, prequeue_size, shuffled, tail, serving, admitted
		FROM waiting_rooms WHERE event_id = ?`

	sqlSetRoom = `UPDATE waiting_rooms SET prequeue_closed = ?2, prequeue_size = ?3,
		shuffled = ?4, tail = ?5, serving = ?6, admitted = ?7
		WHERE event_id = ?1`

	sqlCountPrequeue = `SELECT COUNT(*) FROM queue_entries
		WHERE event_id = ? AND state = 'prequeue'`
)

// statements are the store's prepared statements: those used inside write
// transactions on the write pool, the others on the read pool.
type statements struct {
	event, insertEvent, insertFirstEvent, setStock, addStock *sql.Stmt
	reservation, idempotent, idempotentMany                  *sql.Stmt
	visitorHeld, visitorHeldMany, eventsMany, setStocks      *sql.Stmt
	insertReservation, maxReservation                        *sql.Stmt
	setStatus, releaseEvent, releaseExpired                  *sql.Stmt
	entry, entries, insertEntries, expireEntries             *sql.Stmt
	useAdmissions, room, setRoom, countPrequeue              *sql.Stmt

	readEvent, readEvents, readStats, readReservation, readAnyExpired *sql.Stmt
	readEntry, readRoom                                               *sql.Stmt

	// insertRows[k] inserts 1<<k reservations (sqlInsertReservations).
	insertRows [11]*sql.Stmt
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
		{s.wdb, &st.insertFirstEvent, sqlInsertFirstEvent},
		{s.wdb, &st.setStock, sqlSetStock},
		{s.wdb, &st.addStock, sqlAddStock},
		{s.wdb, &st.reservation, sqlReservation},
		{s.wdb, &st.idempotent, sqlIdempotent},
		{s.wdb, &st.idempotentMany, sqlIdempotentMany},
		{s.wdb, &st.visitorHeld, sqlVisitorHeld},
		{s.wdb, &st.visitorHeldMany, sqlVisitorHeldMany},
		{s.wdb, &st.eventsMany, sqlEventsMany},
		{s.wdb, &st.setStocks, sqlSetStocks},
		{s.wdb, &st.insertReservation, sqlInsertReservation},
		{s.wdb, &st.maxReservation, sqlMaxReservationID},
		{s.wdb, &st.setStatus, sqlSetStatus},
		{s.wdb, &st.releaseEvent, sqlReleaseEvent},
		{s.wdb, &st.releaseExpired, sqlReleaseExpired},
		{s.wdb, &st.entry, sqlEntry},
		{s.wdb, &st.entries, sqlEntries},
		{s.wdb, &st.insertEntries, sqlInsertEntries},
		{s.wdb, &st.expireEntries, sqlExpireEntries},
		{s.wdb, &st.useAdmissions, sqlUseAdmissions},
		{s.wdb, &st.room, sqlRoom},
		{s.wdb, &st.setRoom, sqlSetRoom},
		{s.wdb, &st.countPrequeue, sqlCountPrequeue},
		{s.rdb, &st.readEntry, sqlEntry},
		{s.rdb, &st.readRoom, sqlRoom},
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
	for k := range st.insertRows {
		stmt, err := s.wdb.PrepareContext(ctx, sqlInsertReservations(1<<k))
		if err != nil {
			st.close()
			return nil, dbError(ctx, fmt.Errorf("sqlite: prepare: %w", err))
		}
		st.insertRows[k] = stmt
	}
	s.st.Store(st)
	return st, nil
}

func (st *statements) close() error {
	var errs []error
	for _, stmt := range append(st.insertRows[:], []*sql.Stmt{
		st.event, st.insertEvent, st.insertFirstEvent, st.setStock, st.addStock,
		st.reservation, st.idempotent, st.idempotentMany,
		st.visitorHeld, st.visitorHeldMany,
		st.insertReservation, st.maxReservation,
		st.setStatus, st.releaseEvent, st.releaseExpired,
		st.entry, st.entries, st.insertEntries, st.expireEntries,
		st.useAdmissions, st.room, st.setRoom, st.countPrequeue,
		st.readEvent, st.readEvents, st.readStats, st.readReservation, st.readAnyExpired,
		st.readEntry, st.readRoom,
	}...) {
		if stmt != nil {
			errs = append(errs, stmt.Close())
		}
	}
	return errors.Join(errs...)
}
