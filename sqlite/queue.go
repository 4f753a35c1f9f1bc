package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"time"

	"github.com/ticketrush/ticketrush"
)

// The waiting room. An event has one when it has a waiting_rooms row; that
// row also keeps the queue's counters (see the migration). Every write is a
// BEGIN IMMEDIATE transaction, so the database's single writer is the
// per-event queue lock the contract asks for: a step of AdvanceQueue, a
// batch of joins, a reserve that uses a pass each see the queue as the last
// commit left it, whichever process runs them, and each admission and each
// shuffle happens once.

var _ ticketrush.Queues = (*Store)(nil)

// entry is a stored queue entry with what its state depends on.
type entry struct {
	id int64 // 0 for an entry made in this transaction and not yet stored
	q  ticketrush.QueueEntry
	// done is set once the entry's hold was found purchased.
	done      bool
	challenge string
	// resStatus and resExpires describe the hold made with the pass, ""
	// and zero when the pass is unused.
	resStatus  string
	resExpires time.Time
}

func scanEntry(row scanner, eventID int64) (*entry, error) {
	var (
		en                 entry
		done               int64
		joinedAt           string
		admittedAt, passAt sql.NullString
		resStatus, resExp  sql.NullString
		err                error
	)
	if err := row.Scan(&en.id, &en.q.Visitor, &en.q.Attempt, &en.q.State, &done, &en.q.Position,
		&joinedAt, &admittedAt, &passAt, &en.q.ReservationID, &en.challenge, &resStatus, &resExp); err != nil {
		return nil, err
	}
	en.q.EventID = eventID
	en.done = done != 0
	if en.q.JoinedAt, err = parseTime(joinedAt); err != nil {
		return nil, err
	}
	if en.q.AdmittedAt, err = parseNullTime(admittedAt); err != nil {
		return nil, err
	}
	if en.q.PassExpiresAt, err = parseNullTime(passAt); err != nil {
		return nil, err
	}
	en.resStatus = resStatus.String
	if resExp.Valid {
		if en.resExpires, err = parseTime(resExp.String); err != nil {
			return nil, err
		}
	}
	return &en, nil
}

// active reports whether the entry counts against MaxActive at now:
// admitted with a pass neither used nor expired, or holding tickets
// reserved with it.
func (en *entry) active(now time.Time) bool {
	switch {
	case en.q.State != ticketrush.QueueAdmitted || en.done:
		return false
	case en.q.ReservationID == 0:
		return en.q.PassExpiresAt != nil && now.Before(*en.q.PassExpiresAt)
	default:
		return en.resStatus == ticketrush.StatusReserved && now.Before(en.resExpires)
	}
}

// current returns the entry as of now: an admitted entry whose pass ran out
// unused, or whose hold was cancelled or expired, reads as expired even
// before AdvanceQueue has marked it; a purchased one stays admitted.
func (en *entry) current(now time.Time) *ticketrush.QueueEntry {
	q := en.q
	if q.State == ticketrush.QueueAdmitted && !en.done && en.resStatus != ticketrush.StatusPurchased && !en.active(now) {
		q.State = ticketrush.QueueExpired
	}
	return &q
}

// queue is an event's queue counters, as stored in waiting_rooms.
type queue struct {
	closed                                  bool
	size, shuffled, tail, serving, admitted int64
}

func loadQueue(ctx context.Context, stmt *sql.Stmt, eventID int64) (*queue, error) {
	var q queue
	var closed int64
	err := stmt.QueryRowContext(ctx, eventID).Scan(&closed, &q.size, &q.shuffled, &q.tail, &q.serving, &q.admitted)
	q.closed = closed != 0
	return &q, err
}

func (q *queue) save(ctx context.Context, stmt *sql.Stmt, eventID int64) error {
	_, err := stmt.ExecContext(ctx, eventID, boolInt(q.closed), q.size, q.shuffled, q.tail, q.serving, q.admitted)
	return err
}

// closePrequeue freezes the pre-queue once the sale has started: its size
// is counted now, and positions 1…size are kept for it, so later joins
// queue behind it. It reports whether it changed anything.
func (q *queue) closePrequeue(ctx context.Context, count *sql.Stmt, eventID int64) (bool, error) {
	if q.closed {
		return false, nil
	}
	var n int64
	if err := count.QueryRowContext(ctx, eventID).Scan(&n); err != nil {
		return false, err
	}
	q.closed = true
	q.size = n
	q.tail = max(q.tail, n)
	return true, nil
}

// shuffled reports whether the pre-queue is in order: closed and every
// entry given its position.
func (q *queue) inOrder() bool { return q.closed && q.shuffled >= q.size }

func errNoWaitingRoom() error {
	return ticketrush.ErrWaitingRoomNotFound()
}

// started reports whether the event's sale has started at now.
func started(e *ticketrush.Event, now time.Time) bool {
	return e.SaleStartsAt == nil || !now.Before(*e.SaleStartsAt)
}

const sqlPutRoom = `INSERT INTO waiting_rooms (event_id, admit_per_minute, max_active,
	pass_seconds, prequeue_opens_at, challenge_bits, paused)
	VALUES (?, ?, ?, ?, ?, ?, ?)
	ON CONFLICT (event_id) DO UPDATE SET
		admit_per_minute = excluded.admit_per_minute,
		max_active = excluded.max_active,
		pass_seconds = excluded.pass_seconds,
		prequeue_opens_at = excluded.prequeue_opens_at,
		challenge_bits = excluded.challenge_bits,
		paused = excluded.paused`

// putRoom stores an event's waiting-room settings, keeping its queue.
func putRoom(ctx context.Context, tx *sql.Tx, eventID int64, w *ticketrush.WaitingRoom) error {
	_, err := tx.ExecContext(ctx, sqlPutRoom, eventID, w.AdmitPerMinute, w.MaxActive, w.PassSeconds,
		nullTime(w.PrequeueOpensAt), w.ChallengeBits, boolInt(w.Paused))
	return err
}

// UpdateEvent applies u to the event and returns it. Removing the waiting
// room removes its queue.
func (s *Store) UpdateEvent(ctx context.Context, id int64, u ticketrush.EventUpdate) (*ticketrush.Event, error) {
	if err := u.Validate(); err != nil {
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
	e, err := scanEvent(tx.StmtContext(ctx, st.event).QueryRowContext(ctx, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errEventNotFound()
	}
	if err != nil {
		return nil, dbError(ctx, err)
	}
	now := s.clock()
	c := u.Apply(e, now)
	c.WaitingRoom = copyRoom(c.WaitingRoom)
	_, err = tx.ExecContext(ctx, `UPDATE events SET name = ?, hidden = ?, sale_closed = ?,
		max_per_order = ?, updated_at = ? WHERE id = ?`,
		c.Name, boolInt(c.Hidden), boolInt(c.SaleClosed), c.MaxPerOrder, formatTime(now), id)
	if err != nil {
		return nil, dbError(ctx, err)
	}
	if u.SetWaitingRoom {
		if c.WaitingRoom == nil {
			err = deleteQueue(ctx, tx, id)
		} else {
			err = putRoom(ctx, tx, id, c.WaitingRoom)
		}
		if err != nil {
			return nil, dbError(ctx, err)
		}
	}
	if err := s.commit(ctx, tx); err != nil {
		return nil, err
	}
	return c, nil
}

// deleteQueue removes an event's waiting room and its entries.
func deleteQueue(ctx context.Context, tx *sql.Tx, eventID int64) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM queue_entries WHERE event_id = ?`, eventID); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM waiting_rooms WHERE event_id = ?`, eventID)
	return err
}

// DeleteEvent removes an event that has never had a reservation, with its
// queue.
func (s *Store) DeleteEvent(ctx context.Context, id int64) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var exists, reserved bool
	err = tx.QueryRowContext(ctx, sqlEventExists, id).Scan(&exists, &reserved)
	if err != nil {
		return dbError(ctx, err)
	}
	switch {
	case !exists:
		return errEventNotFound()
	case reserved:
		return ticketrush.ErrEventHasReservations()
	}
	if err := deleteQueue(ctx, tx, id); err != nil {
		return dbError(ctx, err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM events WHERE id = ?`, id); err != nil {
		return dbError(ctx, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO retired_event_ids (id) VALUES (?)`, id); err != nil {
		return dbError(ctx, err)
	}
	return s.commit(ctx, tx)
}

// loadEntries returns the current entries of visitors in the event, by
// visitor.
func loadEntries(ctx context.Context, stmt *sql.Stmt, eventID int64, visitors []string) (map[string]*entry, error) {
	out := make(map[string]*entry, len(visitors))
	if len(visitors) == 0 {
		return out, nil
	}
	data, err := json.Marshal(visitors)
	if err != nil {
		return nil, err
	}
	rows, err := stmt.QueryContext(ctx, eventID, string(data))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		en, err := scanEntry(rows, eventID)
		if err != nil {
			return nil, err
		}
		out[en.q.Visitor] = en
	}
	return out, rows.Err()
}

// JoinQueue joins reqs, in order, in one write transaction: one read of the
// batch's visitors' entries and at most one statement of each kind.
func (s *Store) JoinQueue(ctx context.Context, eventID int64, reqs []ticketrush.JoinRequest) ([]ticketrush.JoinResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	results := make([]ticketrush.JoinResult, len(reqs))
	visitors := make([]string, len(reqs))
	var distinct []string
	seen := map[string]bool{}
	for i, r := range reqs {
		v, err := ticketrush.ParseVisitorToken(r.Visitor)
		if err != nil {
			results[i].Err = err
			continue
		}
		visitors[i] = v
		if !seen[v] {
			seen[v] = true
			distinct = append(distinct, v)
		}
	}
	failAll := func(err error) []ticketrush.JoinResult {
		for i := range results {
			if results[i].Err == nil {
				results[i].Err = err
			}
		}
		return results
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
	e, err := scanEvent(tx.StmtContext(ctx, st.event).QueryRowContext(ctx, eventID))
	if errors.Is(err, sql.ErrNoRows) {
		return failAll(errEventNotFound()), nil
	}
	if err != nil {
		return nil, dbError(ctx, err)
	}
	w := e.WaitingRoom
	if w == nil {
		return failAll(errNoWaitingRoom()), nil
	}
	if e.SaleClosed {
		return failAll(ticketrush.ErrSaleClosed()), nil
	}
	q, err := loadQueue(ctx, tx.StmtContext(ctx, st.room), eventID)
	if err != nil {
		return nil, dbError(ctx, err)
	}
	changed := false
	if started(e, now) {
		// The first join after the start closes the pre-queue if no
		// AdvanceQueue has yet.
		if changed, err = q.closePrequeue(ctx, tx.StmtContext(ctx, st.countPrequeue), eventID); err != nil {
			return nil, dbError(ctx, err)
		}
	} else if !q.closed && (w.PrequeueOpensAt == nil || now.Before(*w.PrequeueOpensAt)) {
		return failAll(ticketrush.ErrQueueNotOpen()), nil
	}

	current, err := loadEntries(ctx, tx.StmtContext(ctx, st.entries), eventID, distinct)
	if err != nil {
		return nil, dbError(ctx, err)
	}
	var (
		inserts [][5]any
		expire  []int64
	)
	for i, r := range reqs {
		if results[i].Err != nil {
			continue
		}
		v := visitors[i]
		attempt := int64(1)
		if prev := current[v]; prev != nil {
			c := prev.current(now)
			if c.State != ticketrush.QueueExpired {
				results[i].Entry = c
				continue
			}
			if r.Challenge != "" && r.Challenge == prev.challenge {
				results[i].Err = ticketrush.ErrChallengeUsed()
				continue
			}
			if prev.id != 0 && prev.q.State == ticketrush.QueueAdmitted {
				expire = append(expire, prev.id)
			}
			attempt = prev.q.Attempt + 1
		}
		en := &entry{q: ticketrush.QueueEntry{EventID: eventID, Visitor: v, Attempt: attempt,
			State: ticketrush.QueuePrequeue, JoinedAt: now}, challenge: r.Challenge}
		if q.closed {
			q.tail++
			en.q.State = ticketrush.QueueWaiting
			en.q.Position = q.tail
			changed = true
		}
		current[v] = en
		var pos any
		if en.q.Position != 0 {
			pos = en.q.Position
		}
		inserts = append(inserts, [5]any{v, attempt, en.q.State, pos, nullable(r.Challenge)})
		c := en.q
		results[i].Entry = &c
		results[i].Created = true
	}

	if !changed && len(inserts) == 0 {
		return results, nil
	}
	if len(expire) > 0 {
		data, err := json.Marshal(expire)
		if err != nil {
			return nil, err
		}
		if _, err := tx.StmtContext(ctx, st.expireEntries).ExecContext(ctx, string(data)); err != nil {
			return nil, dbError(ctx, err)
		}
	}
	if len(inserts) > 0 {
		data, err := json.Marshal(inserts)
		if err != nil {
			return nil, err
		}
		if _, err := tx.StmtContext(ctx, st.insertEntries).ExecContext(ctx, eventID, string(data), formatTime(now)); err != nil {
			return nil, dbError(ctx, err)
		}
	}
	if changed {
		if err := q.save(ctx, tx.StmtContext(ctx, st.setRoom), eventID); err != nil {
			return nil, dbError(ctx, err)
		}
	}
	if err := s.commit(ctx, tx); err != nil {
		return nil, err
	}
	return results, nil
}

// QueueEntry returns the visitor's current entry, its state as of now.
func (s *Store) QueueEntry(ctx context.Context, eventID int64, visitor string) (*ticketrush.QueueEntry, error) {
	st, err := s.statements(ctx)
	if err != nil {
		return nil, err
	}
	e, err := s.Event(ctx, eventID)
	if err != nil {
		return nil, err
	}
	if e.WaitingRoom == nil {
		return nil, errNoWaitingRoom()
	}
	en, err := scanEntry(st.readEntry.QueryRowContext(ctx, eventID, strings.ToLower(visitor)), eventID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ticketrush.ErrNotInQueue()
	}
	if err != nil {
		return nil, dbError(ctx, err)
	}
	return en.current(s.clock()), nil
}

// The queue's counting and stepping statements. They run once per step or
// poll of a whole queue, so they are not kept prepared.
const (
	// sqlEventExists tells whether event ?1 exists and whether it has
	// reservations, each status through its partial index (migration 00004).
	sqlEventExists = `SELECT EXISTS (SELECT 1 FROM events WHERE id = ?1),
		EXISTS (SELECT 1 FROM reservations WHERE event_id = ?1 AND status = 'reserved')
		OR EXISTS (SELECT 1 FROM reservations WHERE event_id = ?1 AND status <> 'reserved')`

	// sqlQueueCounts counts in one statement, so in one snapshot: ?1 event,
	// ?2 now, ?3 now minus a minute.
	sqlQueueCounts = `SELECT
		(SELECT COUNT(*) FROM queue_entries WHERE event_id = ?1 AND state = 'prequeue'),
		(SELECT COUNT(*) FROM queue_entries WHERE event_id = ?1 AND admitted_at > ?3),
		(` + sqlActive + `),
		(SELECT COALESCE(SUM(amount), 0) FROM reservations
			WHERE event_id = ?1 AND status = 'reserved')`

	// sqlActive counts the entries that count against max_active at ?2.
	sqlActive = `SELECT COUNT(*) FROM queue_entries AS q
		LEFT JOIN reservations AS r ON r.id = q.reservation_id
		WHERE q.event_id = ?1 AND q.state = 'admitted' AND q.done = 0
		AND ((q.reservation_id IS NULL AND q.pass_expires_at > ?2)
			OR (r.status = 'reserved' AND r.expires_at > ?2))`

	// sqlWindow is what AdmissionsAt needs: admissions after ?3 (now minus
	// a minute), those active at ?2, and the latest admission.
	sqlWindow = `SELECT
		(SELECT COUNT(*) FROM queue_entries WHERE event_id = ?1 AND admitted_at > ?3),
		(` + sqlActive + `),
		(SELECT MAX(admitted_at) FROM queue_entries WHERE event_id = ?1 AND admitted_at IS NOT NULL)`

	// sqlUnkeyed is pass 1 of the shuffle: pre-queue entries without a key.
	sqlUnkeyed = `SELECT id FROM queue_entries
		WHERE event_id = ?1 AND state = 'prequeue' AND shuffle_key IS NULL LIMIT ?2`

	// sqlSetKeys takes [[id, key], …].
	sqlSetKeys = `UPDATE queue_entries SET shuffle_key = j.value ->> 1
		FROM json_each(?) AS j WHERE queue_entries.id = j.value ->> 0`

	// sqlShuffleNext is pass 2: the next pre-queue entries in key order.
	sqlShuffleNext = `SELECT id FROM queue_entries
		WHERE event_id = ?1 AND state = 'prequeue'
		ORDER BY shuffle_key, id LIMIT ?2`

	// sqlPlace takes [[id, position], …].
	sqlPlace = `UPDATE queue_entries SET state = 'waiting', position = j.value ->> 1
		FROM json_each(?) AS j WHERE queue_entries.id = j.value ->> 0`

	// sqlMarkDone sets aside at most ?2 admitted entries whose hold was
	// purchased: they stay admitted and are no longer active.
	sqlMarkDone = `UPDATE queue_entries SET done = 1 WHERE id IN (
		SELECT q.id FROM queue_entries AS q JOIN reservations AS r ON r.id = q.reservation_id
		WHERE q.event_id = ?1 AND q.state = 'admitted' AND q.done = 0 AND r.status = 'purchased'
		LIMIT ?2)`

	// sqlExpireStale expires at most ?3 admitted entries whose pass ran out
	// unused at ?2 or whose hold ended.
	sqlExpireStale = `UPDATE queue_entries SET state = 'expired' WHERE id IN (
		SELECT q.id FROM queue_entries AS q LEFT JOIN reservations AS r ON r.id = q.reservation_id
		WHERE q.event_id = ?1 AND q.state = 'admitted' AND q.done = 0
		AND CASE WHEN q.reservation_id IS NULL THEN q.pass_expires_at <= ?2
			ELSE r.status IN ('cancelled', 'expired')
				OR (r.status = 'reserved' AND r.expires_at <= ?2) END
		LIMIT ?3)`

	// sqlAdmit admits the next ?4 waiting entries in position order.
	sqlAdmit = `UPDATE queue_entries SET state = 'admitted', admitted_at = ?2, pass_expires_at = ?3
		WHERE id IN (SELECT id FROM queue_entries WHERE event_id = ?1 AND state = 'waiting'
			ORDER BY position LIMIT ?4)
		RETURNING position`
)

// QueueStats describes the event's queue, read in one snapshot.
func (s *Store) QueueStats(ctx context.Context, eventID int64) (*ticketrush.QueueStats, error) {
	st, err := s.statements(ctx)
	if err != nil {
		return nil, err
	}
	// A read transaction on a reader: every statement sees the same
	// commit.
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, dbError(ctx, err)
	}
	defer tx.Rollback()
	now := s.clock()
	e, err := scanEvent(tx.StmtContext(ctx, st.readEvent).QueryRowContext(ctx, eventID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errEventNotFound()
	}
	if err != nil {
		return nil, dbError(ctx, err)
	}
	if e.WaitingRoom == nil {
		return nil, errNoWaitingRoom()
	}
	q, err := loadQueue(ctx, tx.StmtContext(ctx, st.readRoom), eventID)
	if err != nil {
		return nil, dbError(ctx, err)
	}
	qs := &ticketrush.QueueStats{
		EventID:   eventID,
		Serving:   q.serving,
		Tail:      q.tail,
		Admitted:  q.admitted,
		Available: e.TicketQuantity,
	}
	err = tx.QueryRowContext(ctx, sqlQueueCounts, eventID, formatTime(now), formatTime(now.Add(-time.Minute))).
		Scan(&qs.Prequeue, &qs.AdmittedLastMinute, &qs.Active, &qs.Held)
	if err != nil {
		return nil, dbError(ctx, err)
	}
	// The waiting entries, from the counters rather than a count that grew
	// with the queue and ran on every poll refresh: positions are dense
	// and fixed, 1…size kept for the pre-queue when it closed, each later
	// join the next, and admission takes them in order up to serving. So
	// every position after serving waits, but for pre-queue entries still
	// being shuffled; before the pre-queue closes nobody waits.
	if q.closed {
		qs.Waiting = max(q.tail-q.serving-qs.Prequeue, 0)
	}
	// Before any step closed it, a queue whose sale has started and that
	// has no pre-queue is in order already.
	qs.Shuffled = q.inOrder() || (!q.closed && started(e, now) && qs.Prequeue == 0)
	return qs, nil
}

// AdvanceQueue does one bounded step of the queue's work in one write
// transaction: close and shuffle the pre-queue, expire finished
// admissions, admit the next visitors.
func (s *Store) AdvanceQueue(ctx context.Context, eventID int64) (*ticketrush.QueueAdvance, error) {
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
	e, err := scanEvent(tx.StmtContext(ctx, st.event).QueryRowContext(ctx, eventID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errEventNotFound()
	}
	if err != nil {
		return nil, dbError(ctx, err)
	}
	w := e.WaitingRoom
	if w == nil {
		return nil, errNoWaitingRoom()
	}
	q, err := loadQueue(ctx, tx.StmtContext(ctx, st.room), eventID)
	if err != nil {
		return nil, dbError(ctx, err)
	}
	a := &ticketrush.QueueAdvance{}
	changed := false

	// 1. Close the pre-queue and shuffle it.
	if started(e, now) {
		if changed, err = q.closePrequeue(ctx, tx.StmtContext(ctx, st.countPrequeue), eventID); err != nil {
			return nil, dbError(ctx, err)
		}
	}
	if q.closed && q.shuffled < q.size {
		n, err := shuffle(ctx, tx, q, eventID)
		if err != nil {
			return nil, dbError(ctx, err)
		}
		a.Shuffled = n
		changed = true
		a.More = a.More || q.shuffled < q.size
	}

	// 2. Expire admissions that are over; set aside those that bought.
	res, err := tx.ExecContext(ctx, sqlMarkDone, eventID, ticketrush.QueueChunk)
	if err != nil {
		return nil, dbError(ctx, err)
	}
	done, err := res.RowsAffected()
	if err != nil {
		return nil, dbError(ctx, err)
	}
	res, err = tx.ExecContext(ctx, sqlExpireStale, eventID, nowText, ticketrush.QueueChunk)
	if err != nil {
		return nil, dbError(ctx, err)
	}
	expired, err := res.RowsAffected()
	if err != nil {
		return nil, dbError(ctx, err)
	}
	a.Expired = int(expired)
	changed = changed || done > 0 || expired > 0
	a.More = a.More || done == ticketrush.QueueChunk || expired == ticketrush.QueueChunk

	// 3. Admit.
	if !w.Paused && q.inOrder() && e.TicketQuantity > 0 && q.serving < q.tail {
		n, err := admit(ctx, tx, q, w, eventID, now)
		if err != nil {
			return nil, dbError(ctx, err)
		}
		a.Admitted = n
		changed = changed || n > 0
		a.More = a.More || n == ticketrush.QueueChunk
	}

	if !changed {
		// Nothing to write: the rollback costs no fsync.
		return a, nil
	}
	if err := q.save(ctx, tx.StmtContext(ctx, st.setRoom), eventID); err != nil {
		return nil, dbError(ctx, err)
	}
	if err := s.commit(ctx, tx); err != nil {
		return nil, err
	}
	return a, nil
}

// shuffle does one chunk of the shuffle. Pass 1 gives each pre-queue entry
// a key from crypto/rand, drawn now; pass 2, once every entry has one,
// gives positions shuffled+1, … in (key, id) order. Keys are uniform and
// independent, so the order is a uniformly random permutation (a tie of two
// 63-bit keys, broken by id, is too unlikely to matter). It returns how
// many positions it gave.
func shuffle(ctx context.Context, tx *sql.Tx, q *queue, eventID int64) (int, error) {
	ids, err := queryIDs(ctx, tx, sqlUnkeyed, eventID, ticketrush.QueueChunk)
	if err != nil {
		return 0, err
	}
	if len(ids) > 0 {
		buf := make([]byte, 8*len(ids))
		if _, err := rand.Read(buf); err != nil {
			return 0, err
		}
		keys := make([][2]int64, len(ids))
		for i, id := range ids {
			keys[i] = [2]int64{id, int64(binary.BigEndian.Uint64(buf[8*i:]) & math.MaxInt64)}
		}
		if err := execJSON(ctx, tx, sqlSetKeys, keys); err != nil {
			return 0, err
		}
	}
	// One call touches at most QueueChunk entries in all; pass 2 starts
	// once pass 1 found no more to key.
	budget := ticketrush.QueueChunk - len(ids)
	if budget == 0 {
		return 0, nil
	}
	ids, err = queryIDs(ctx, tx, sqlShuffleNext, eventID, budget)
	if err != nil {
		return 0, err
	}
	places := make([][2]int64, len(ids))
	for i, id := range ids {
		q.shuffled++
		places[i] = [2]int64{id, q.shuffled}
	}
	if len(places) > 0 {
		if err := execJSON(ctx, tx, sqlPlace, places); err != nil {
			return 0, err
		}
	}
	return len(places), nil
}

// admit admits as many waiting entries as the window and the active cap
// allow, in position order, and returns how many.
func admit(ctx context.Context, tx *sql.Tx, q *queue, w *ticketrush.WaitingRoom, eventID int64, now time.Time) (int, error) {
	var (
		lastMinute, active int64
		last               sql.NullString
	)
	err := tx.QueryRowContext(ctx, sqlWindow, eventID, formatTime(now), formatTime(now.Add(-time.Minute))).
		Scan(&lastMinute, &active, &last)
	if err != nil {
		return 0, err
	}
	var lastAt *time.Time
	if last.Valid {
		t, err := parseTime(last.String)
		if err != nil {
			return 0, err
		}
		lastAt = &t
	}
	n := ticketrush.AdmissionsAt(w, lastMinute, active, lastAt, now)
	if n == 0 {
		return 0, nil
	}
	pass := now.Add(time.Duration(w.PassSeconds) * time.Second)
	rows, err := tx.QueryContext(ctx, sqlAdmit, eventID, formatTime(now), formatTime(pass), n)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	k := 0
	for rows.Next() {
		var pos int64
		if err := rows.Scan(&pos); err != nil {
			return 0, err
		}
		q.serving = max(q.serving, pos)
		k++
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	q.admitted += int64(k)
	return k, nil
}

func queryIDs(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// execJSON runs a statement that takes its rows as one JSON array.
func execJSON(ctx context.Context, tx *sql.Tx, query string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, query, string(data))
	return err
}

// stmtJSON runs a prepared statement that takes its rows as one JSON array.
func stmtJSON(ctx context.Context, stmt *sql.Stmt, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = stmt.ExecContext(ctx, string(data))
	return err
}

// admissionCheck applies the waiting room to a reserve in the order the
// contract gives: a closed or not yet started sale answers first, then the
// pass. en is the visitor's current entry, nil when none.
func admissionCheck(e *ticketrush.Event, en *entry, now time.Time, r ticketrush.ReserveRequest) error {
	if e.WaitingRoom == nil {
		return nil
	}
	if err := ticketrush.Decide(e, now, r, math.MaxInt64, 0); err != nil {
		if c := ticketrush.ErrorCode(err); c == ticketrush.ESaleClosed || c == ticketrush.ESaleNotStarted {
			return err
		}
	}
	var qe *ticketrush.QueueEntry
	if en != nil {
		qe = &en.q
	}
	return ticketrush.CheckAdmission(e, qe, now, r)
}
