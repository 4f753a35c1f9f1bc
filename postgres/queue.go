package postgres

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/ticketrush/ticketrush"
)

var _ ticketrush.Queues = (*Store)(nil)

// Statements of event settings.
const (
	updateEvent = `
UPDATE events SET name = $2, hidden = $3, sale_closed = $4, max_per_order = $5,
	waiting_room = $6, updated_at = $7
WHERE id = $1`

	// clearQueue empties an event's queue when its room is removed, so a
	// room added later starts afresh.
	clearQueue = `
WITH gone AS (DELETE FROM queue_entries WHERE event_id = $1)
INSERT INTO queues (event_id) VALUES ($1)
ON CONFLICT (event_id) DO UPDATE SET prequeue_closed = false, prequeue_size = 0,
	tail = 0, serving = 0, admitted = 0, last_admitted_at = NULL`

	// ensureQueue creates the queue row of an event that lacks one (every
	// event gets one when created; this keeps a step safe regardless).
	ensureQueue = `INSERT INTO queues (event_id) SELECT id FROM events WHERE id = $1
ON CONFLICT (event_id) DO NOTHING`

	hasReservations = `SELECT EXISTS (SELECT 1 FROM reservations WHERE event_id = $1)`
	deleteEvent     = `DELETE FROM events WHERE id = $1`
)

// UpdateEvent applies u to the event and returns it. It holds the event
// row, so a reserve decides either before or after the change.
func (s *Store) UpdateEvent(ctx context.Context, id int64, u ticketrush.EventUpdate) (*ticketrush.Event, error) {
	if err := u.Validate(); err != nil {
		return nil, err
	}
	var e *ticketrush.Event
	err := retry(ctx, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			old, err := scanEvent(tx.QueryRow(ctx, lockEvent, id))
			if errors.Is(err, pgx.ErrNoRows) {
				return errEventNotFound()
			}
			if err != nil {
				return err
			}
			e = u.Apply(old, s.now())
			e.WaitingRoom = normalizeRoom(e.WaitingRoom)
			room, err := encodeRoom(e.WaitingRoom)
			if err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, updateEvent, id, e.Name, e.Hidden, e.SaleClosed,
				e.MaxPerOrder, room, e.UpdatedAt); err != nil {
				return err
			}
			q := ensureQueue
			if u.SetWaitingRoom && u.WaitingRoom == nil {
				q = clearQueue
			}
			_, err = tx.Exec(ctx, q, id)
			return err
		})
	})
	if err != nil {
		return nil, s.fail("update event", err)
	}
	return e, nil
}

// DeleteEvent removes an event that has never had a reservation; its queue
// goes with it (ON DELETE CASCADE).
func (s *Store) DeleteEvent(ctx context.Context, id int64) error {
	err := retry(ctx, func() error {
		return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			var one int64
			err := tx.QueryRow(ctx, `SELECT id FROM events WHERE id = $1 FOR UPDATE`, id).Scan(&one)
			if errors.Is(err, pgx.ErrNoRows) {
				return errEventNotFound()
			}
			if err != nil {
				return err
			}
			var has bool
			if err := tx.QueryRow(ctx, hasReservations, id).Scan(&has); err != nil {
				return err
			}
			if has {
				return ticketrush.ErrEventHasReservations()
			}
			_, err = tx.Exec(ctx, deleteEvent, id)
			return err
		})
	})
	return s.fail("delete event", err)
}

// entryColumns are read by scanEntry: the entry, and the status and expiry
// of the hold made with its pass, which decide whether an admitted entry
// is still live.
const entryColumns = `q.id, q.visitor, q.attempt, q.state, coalesce(q.position, 0), q.joined_at,
	q.admitted_at, q.pass_expires_at, coalesce(q.reservation_id, 0), q.challenge,
	coalesce(r.status, ''), r.expires_at`

// latestEntries reads each visitor's latest entry in the event's queue:
// one index descent per visitor (LATERAL … LIMIT 1 binds both columns). A
// visitor = ANY($2) filter let the planner, with statistics taken while
// the table was small (the first seconds of an on-sale), scan all the
// event's entries for every batch of joins.
const latestEntries = `
SELECT ` + entryColumns + `
FROM unnest($2::text[]) AS v(visitor)
CROSS JOIN LATERAL (
	SELECT * FROM queue_entries q
	WHERE q.event_id = $1 AND q.visitor = v.visitor
	ORDER BY q.attempt DESC LIMIT 1
) AS q
LEFT JOIN reservations r ON r.id = q.reservation_id`

// entry is a stored queue entry with what its live state depends on.
type entry struct {
	id        int64
	e         ticketrush.QueueEntry
	stored    string // the state column
	challenge string
}

func scanEntry(eventID int64, now time.Time, row pgx.Row) (*entry, error) {
	var (
		en         entry
		holdStatus string
		holdEnds   *time.Time
	)
	err := row.Scan(&en.id, &en.e.Visitor, &en.e.Attempt, &en.stored, &en.e.Position,
		&en.e.JoinedAt, &en.e.AdmittedAt, &en.e.PassExpiresAt, &en.e.ReservationID,
		&en.challenge, &holdStatus, &holdEnds)
	if err != nil {
		return nil, err
	}
	en.e.EventID = eventID
	en.e.JoinedAt = en.e.JoinedAt.UTC()
	en.e.AdmittedAt = utcPtr(en.e.AdmittedAt)
	en.e.PassExpiresAt = utcPtr(en.e.PassExpiresAt)
	en.e.State = en.stored
	if en.stored == ticketrush.QueueAdmitted && !admissionLive(&en.e, now, holdStatus, holdEnds) {
		en.e.State = ticketrush.QueueExpired
	}
	return &en, nil
}

// admissionLive reports whether an admitted entry still reads admitted:
// its pass is unused and unexpired, or the hold made with it is reserved
// and unexpired (active), or was bought (done). The SQL of the expiry step
// says the same; the active count leaves out the bought.
func admissionLive(e *ticketrush.QueueEntry, now time.Time, holdStatus string, holdEnds *time.Time) bool {
	if e.ReservationID == 0 {
		return e.PassExpiresAt != nil && e.PassExpiresAt.After(now)
	}
	return holdStatus == ticketrush.StatusPurchased ||
		holdStatus == ticketrush.StatusReserved && holdEnds != nil && holdEnds.After(now)
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

func (en *entry) live() bool { return en.e.State != ticketrush.QueueExpired }

func errNoRoom() error {
	return ticketrush.ErrWaitingRoomNotFound()
}

// Statements of joins.
const (
	lockQueue = `SELECT prequeue_closed, prequeue_size, tail FROM queues WHERE event_id = $1 FOR UPDATE`

	countPrequeue = `SELECT count(*) FROM queue_entries WHERE event_id = $1 AND state = 'prequeue'`

	// writeJoins writes a batch of joins in one statement: it marks
	// expired the admitted entries found dead, inserts every new entry
	// and moves the queue's tail.
	writeJoins = `
WITH expire AS (
	UPDATE queue_entries SET state = 'expired'
	WHERE id = ANY($2::bigint[]) AND state = 'admitted'
), ins AS (
	INSERT INTO queue_entries (event_id, visitor, attempt, state, position, challenge, joined_at)
	SELECT $1, t.visitor, t.attempt, t.state, nullif(t.position, 0), t.challenge, $3
	FROM unnest($4::text[], $5::bigint[], $6::text[], $7::bigint[], $8::text[])
		AS t(visitor, attempt, state, position, challenge)
)
UPDATE queues SET prequeue_closed = $9, prequeue_size = $10, tail = $11 WHERE event_id = $1`
)

// queueRow is the locked state of an event's queue.
type queueRow struct {
	closed   bool
	size     int64
	tail     int64
	prequeue int64 // entries still in the pre-queue
}

// close ends the pre-queue, as the sale has started: its size is frozen
// and positions 1…P are kept for it.
func (q *queueRow) close() {
	if q.closed {
		return
	}
	q.closed, q.size, q.tail = true, q.prequeue, q.prequeue
}

// saleStarted reports whether an event's sale has started at now.
func saleStarted(e *ticketrush.Event, now time.Time) bool {
	return e.SaleStartsAt == nil || !now.Before(*e.SaleStartsAt)
}

// JoinQueue joins reqs, all for eventID, in order, in one transaction of
// two round trips: the first locks the queue row and reads every visitor's
// latest entry, the second writes all joins in one statement and commits.
func (s *Store) JoinQueue(ctx context.Context, eventID int64, reqs []ticketrush.JoinRequest) ([]ticketrush.JoinResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	var results []ticketrush.JoinResult
	err := retry(ctx, func() (err error) {
		results, err = s.joinQueue(ctx, eventID, reqs)
		return err
	})
	if err != nil {
		return nil, s.fail("join queue", err)
	}
	return results, nil
}

func (s *Store) joinQueue(ctx context.Context, eventID int64, reqs []ticketrush.JoinRequest) ([]ticketrush.JoinResult, error) {
	now := s.now()
	results := make([]ticketrush.JoinResult, len(reqs))
	var visitors []string
	seen := map[string]bool{}
	for i, r := range reqs {
		if r.Visitor == "" {
			_, results[i].Err = ticketrush.ParseVisitorToken("")
			continue
		}
		if !seen[r.Visitor] {
			seen[r.Visitor] = true
			visitors = append(visitors, r.Visitor)
		}
	}
	if len(visitors) == 0 {
		return results, nil
	}

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Release()
	defer rollback(conn)

	b := &pgx.Batch{}
	b.Queue("BEGIN")
	b.Queue(selectEvent, eventID)
	b.Queue(ensureQueue, eventID)
	b.Queue(lockQueue, eventID)
	b.Queue(countPrequeue, eventID)
	b.Queue(latestEntries, eventID, visitors)
	br := conn.SendBatch(ctx, b)
	var (
		e      *ticketrush.Event
		q      queueRow
		latest = map[string]*entry{}
	)
	err = func() error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		var err error
		e, err = scanEvent(br.QueryRow())
		if errors.Is(err, pgx.ErrNoRows) {
			e = nil
		} else if err != nil {
			return err
		}
		if _, err := br.Exec(); err != nil {
			return err
		}
		err = br.QueryRow().Scan(&q.closed, &q.size, &q.tail)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err := br.QueryRow().Scan(&q.prequeue); err != nil {
			return err
		}
		rows, _ := br.Query()
		for rows.Next() {
			en, err := scanEntry(eventID, now, rows)
			if err != nil {
				rows.Close()
				return err
			}
			latest[en.e.Visitor] = en
		}
		return rows.Err()
	}()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}

	var refuse error
	switch {
	case e == nil:
		refuse = errEventNotFound()
	case e.WaitingRoom == nil:
		refuse = errNoRoom()
	case e.SaleClosed:
		refuse = ticketrush.ErrSaleClosed()
	case e.WaitingRoom.PrequeueOpensAt != nil && now.Before(*e.WaitingRoom.PrequeueOpensAt),
		e.WaitingRoom.PrequeueOpensAt == nil && !saleStarted(e, now):
		refuse = ticketrush.ErrQueueNotOpen()
	}
	if refuse != nil {
		for i := range results {
			if results[i].Err == nil {
				results[i].Err = refuse
			}
		}
		return results, nil
	}

	// Once the sale has started, the pre-queue is closed, by this batch if
	// no advance did it first: later joins queue behind it.
	prequeue := !q.closed && !saleStarted(e, now)
	if !prequeue {
		q.close()
	}
	var (
		expire                 []int64
		vs, states, challenges []string
		attempts, positions    []int64
	)
	for i, r := range reqs {
		if results[i].Err != nil {
			continue
		}
		prev := latest[r.Visitor]
		if prev != nil && prev.live() {
			c := prev.e
			results[i].Entry = &c
			continue
		}
		if prev != nil && r.Challenge != "" && prev.challenge == r.Challenge {
			results[i].Err = ticketrush.ErrChallengeUsed()
			continue
		}
		n := &entry{challenge: r.Challenge, e: ticketrush.QueueEntry{
			EventID: eventID, Visitor: r.Visitor, Attempt: 1, JoinedAt: now,
		}}
		if prev != nil {
			n.e.Attempt = prev.e.Attempt + 1
			if prev.stored == ticketrush.QueueAdmitted {
				expire = append(expire, prev.id)
			}
		}
		if prequeue {
			n.e.State = ticketrush.QueuePrequeue
			q.prequeue++
		} else {
			n.e.State = ticketrush.QueueWaiting
			q.tail++
			n.e.Position = q.tail
		}
		latest[r.Visitor] = n
		c := n.e
		results[i].Entry, results[i].Created = &c, true
		vs = append(vs, r.Visitor)
		attempts = append(attempts, n.e.Attempt)
		states = append(states, n.e.State)
		positions = append(positions, n.e.Position)
		challenges = append(challenges, r.Challenge)
	}

	b = &pgx.Batch{}
	b.Queue(writeJoins, eventID, expire, now, vs, attempts, states, positions, challenges,
		q.closed, q.size, q.tail)
	b.Queue("COMMIT")
	if err := commitBatch(ctx, conn, b); err != nil {
		return nil, err
	}
	return results, nil
}

// commitBatch sends b, whose last statement is COMMIT, and checks that the
// transaction ended. An error after b was sent leaves the outcome unknown.
func commitBatch(ctx context.Context, conn *pgxpool.Conn, b *pgx.Batch) error {
	if conn.Conn().IsClosed() {
		return pgconn.ErrConnClosed
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		return afterCommitSent(err)
	}
	if conn.Conn().PgConn().TxStatus() != 'I' {
		return errors.New("commit did not end the transaction")
	}
	return nil
}

const selectEntry = `SELECT ` + entryColumns + `
FROM queue_entries q LEFT JOIN reservations r ON r.id = q.reservation_id
WHERE q.event_id = $1 AND q.visitor = $2
ORDER BY q.attempt DESC LIMIT 1`

// QueueEntry returns the visitor's latest entry, its state as of now.
func (s *Store) QueueEntry(ctx context.Context, eventID int64, visitor string) (*ticketrush.QueueEntry, error) {
	now := s.now()
	e, err := s.Event(ctx, eventID)
	if err != nil {
		return nil, err
	}
	if e.WaitingRoom == nil {
		return nil, errNoRoom()
	}
	en, err := scanEntry(eventID, now, s.pool.QueryRow(ctx, selectEntry, eventID, visitor))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ticketrush.ErrNotInQueue()
	}
	if err != nil {
		return nil, s.fail("queue entry", err)
	}
	return &en.e, nil
}

// activeFilter is the condition of an admitted entry that counts against
// max_active (see admissionLive); $2 is now.
const activeFilter = `q.state = 'admitted' AND (
	(q.reservation_id IS NULL AND q.pass_expires_at > $2)
	OR (r.status = 'reserved' AND r.expires_at > $2))`

// selectQueueStats reads a queue's figures in one statement, one snapshot.
const selectQueueStats = `
SELECT e.ticket_quantity, e.waiting_room IS NOT NULL, qu.prequeue_closed, qu.serving, qu.tail,
	qu.admitted, qu.last_admitted_at,
	(SELECT count(*) FROM queue_entries WHERE event_id = $1 AND state = 'prequeue'),
	(SELECT count(*) FROM queue_entries WHERE event_id = $1 AND admitted_at > $3),
	(SELECT count(*) FROM queue_entries q LEFT JOIN reservations r ON r.id = q.reservation_id
		WHERE q.event_id = $1 AND ` + activeFilter + `),
	(SELECT coalesce(sum(amount), 0)::bigint FROM reservations WHERE event_id = $1 AND status = 'reserved')
FROM events e JOIN queues qu ON qu.event_id = e.id
WHERE e.id = $1`

// waitingCount is the number of waiting entries, from the queue row's
// counters rather than a count over the entries, which grew with the queue
// and ran under the queue's lock in every advance (slowing every join of a
// long queue). Positions are dense and fixed: closing the pre-queue keeps
// 1…P for it (tail = P) and each later join takes the next; admission
// takes them in order up to serving, and only admitted entries ever leave
// the waiting state other than by the shuffle. So the positions after
// serving are waiting, but for those of the pre-queue still being
// shuffled. Before the pre-queue closes nobody waits.
func waitingCount(closed bool, tail, serving, prequeue int64) int64 {
	if !closed {
		return 0
	}
	return max(tail-serving-prequeue, 0)
}

// queueFigures is what selectQueueStats reads.
type queueFigures struct {
	st      ticketrush.QueueStats
	hasRoom bool
	closed  bool
	last    *time.Time
}

func readQueueFigures(ctx context.Context, q querier, eventID int64, now time.Time) (*queueFigures, error) {
	f := &queueFigures{st: ticketrush.QueueStats{EventID: eventID}}
	err := q.QueryRow(ctx, selectQueueStats, eventID, now, now.Add(-time.Minute)).Scan(
		&f.st.Available, &f.hasRoom, &f.closed, &f.st.Serving, &f.st.Tail, &f.st.Admitted, &f.last,
		&f.st.Prequeue, &f.st.AdmittedLastMinute, &f.st.Active, &f.st.Held)
	if err != nil {
		return nil, err
	}
	f.st.Waiting = waitingCount(f.closed, f.st.Tail, f.st.Serving, f.st.Prequeue)
	return f, nil
}

// QueueStats describes the event's queue.
func (s *Store) QueueStats(ctx context.Context, eventID int64) (*ticketrush.QueueStats, error) {
	now := s.now()
	e, err := s.Event(ctx, eventID)
	if err != nil {
		return nil, err
	}
	if e.WaitingRoom == nil {
		return nil, errNoRoom()
	}
	f, err := readQueueFigures(ctx, s.pool, eventID, now)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errEventNotFound()
	}
	if err != nil {
		return nil, s.fail("queue stats", err)
	}
	if !f.hasRoom {
		return nil, errNoRoom()
	}
	f.st.Shuffled = (f.closed || saleStarted(e, now)) && f.st.Prequeue == 0
	return &f.st, nil
}

// Statements of AdvanceQueue.
const (
	// countUnkeyed counts pre-queue entries without a shuffle key yet.
	countUnkeyed = `SELECT count(*) FROM queue_entries
WHERE event_id = $1 AND state = 'prequeue' AND shuffle_key IS NULL`

	// drawKeys gives the next pre-queue entries the keys drawn in Go.
	drawKeys = `
WITH todo AS (
	SELECT id, row_number() OVER (ORDER BY id) AS n
	FROM (SELECT id FROM queue_entries
		WHERE event_id = $1 AND state = 'prequeue' AND shuffle_key IS NULL
		ORDER BY id LIMIT cardinality($2::bigint[])) AS t
)
UPDATE queue_entries q SET shuffle_key = k.key
FROM todo JOIN unnest($2::bigint[]) WITH ORDINALITY AS k(key, n) ON k.n = todo.n
WHERE q.id = todo.id`

	// placeKeyed gives the next pre-queue entries, in key order, the
	// positions after the $3 already given.
	placeKeyed = `
WITH todo AS (
	SELECT id, row_number() OVER (ORDER BY shuffle_key, id) AS n
	FROM (SELECT id, shuffle_key FROM queue_entries
		WHERE event_id = $1 AND state = 'prequeue'
		ORDER BY shuffle_key, id LIMIT $2) AS t
)
UPDATE queue_entries q SET state = 'waiting', position = $3 + todo.n
FROM todo WHERE q.id = todo.id`

	// expireAdmitted marks expired the admitted entries whose pass ran
	// out unused or whose hold ended unbought (see admissionLive).
	expireAdmitted = `
WITH due AS (
	SELECT q.id FROM queue_entries q LEFT JOIN reservations r ON r.id = q.reservation_id
	WHERE q.event_id = $1 AND q.state = 'admitted' AND NOT (
		(q.reservation_id IS NULL AND q.pass_expires_at > $2)
		OR (r.status = 'reserved' AND r.expires_at > $2)
		OR r.status = 'purchased')
	LIMIT $3
)
UPDATE queue_entries q SET state = 'expired' FROM due WHERE q.id = due.id`

	// admitNext admits the next waiting entries in position order.
	admitNext = `
WITH next AS (
	SELECT id FROM queue_entries WHERE event_id = $1 AND state = 'waiting'
	ORDER BY position LIMIT $2
), admitted AS (
	UPDATE queue_entries q SET state = 'admitted', admitted_at = $3, pass_expires_at = $4
	FROM next WHERE q.id = next.id
	RETURNING q.position
)
UPDATE queues SET serving = greatest(serving, (SELECT max(position) FROM admitted)),
	admitted = admitted + (SELECT count(*) FROM admitted), last_admitted_at = $3
WHERE event_id = $1 AND EXISTS (SELECT 1 FROM admitted)
RETURNING (SELECT count(*) FROM admitted)`

	closePrequeue = `UPDATE queues SET prequeue_closed = true, prequeue_size = $2, tail = $2
WHERE event_id = $1 AND NOT prequeue_closed`
)

// AdvanceQueue does one bounded step of the queue's work in one
// transaction holding the queue row, so each step happens once across
// processes.
func (s *Store) AdvanceQueue(ctx context.Context, eventID int64) (*ticketrush.QueueAdvance, error) {
	var a *ticketrush.QueueAdvance
	err := retry(ctx, func() (err error) {
		a, err = s.advanceQueue(ctx, eventID)
		return err
	})
	if err != nil {
		return nil, s.fail("advance queue", err)
	}
	return a, nil
}

func (s *Store) advanceQueue(ctx context.Context, eventID int64) (*ticketrush.QueueAdvance, error) {
	now := s.now()
	a := &ticketrush.QueueAdvance{}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer rollbackTx(tx)

	var q queueRow
	if _, err := tx.Exec(ctx, ensureQueue, eventID); err != nil {
		return nil, err
	}
	err = tx.QueryRow(ctx, lockQueue, eventID).Scan(&q.closed, &q.size, &q.tail)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return nil, err
	}
	e, err := scanEvent(tx.QueryRow(ctx, selectEvent, eventID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errEventNotFound()
	}
	if err != nil {
		return nil, err
	}
	if e.WaitingRoom == nil {
		return nil, errNoRoom()
	}

	// Step 1: close and shuffle the pre-queue.
	shuffled := false
	if saleStarted(e, now) {
		var unkeyed int64
		if err := tx.QueryRow(ctx, countPrequeue, eventID).Scan(&q.prequeue); err != nil {
			return nil, err
		}
		if !q.closed {
			q.close()
			if _, err := tx.Exec(ctx, closePrequeue, eventID, q.size); err != nil {
				return nil, err
			}
		}
		if q.prequeue > 0 {
			if err := tx.QueryRow(ctx, countUnkeyed, eventID).Scan(&unkeyed); err != nil {
				return nil, err
			}
		}
		switch {
		case unkeyed > 0:
			// Pass 1: every entry gets its key before any gets a position,
			// so the order is one uniform draw over the whole pre-queue.
			keys, err := randomKeys(int(min(unkeyed, ticketrush.QueueChunk)))
			if err != nil {
				return nil, err
			}
			tag, err := tx.Exec(ctx, drawKeys, eventID, keys)
			if err != nil {
				return nil, err
			}
			a.Shuffled = int(tag.RowsAffected())
			a.More = true // pass 2 is still to come
		case q.prequeue > 0:
			// Pass 2: positions 1…P in key order.
			tag, err := tx.Exec(ctx, placeKeyed, eventID, ticketrush.QueueChunk, q.size-q.prequeue)
			if err != nil {
				return nil, err
			}
			a.Shuffled = int(tag.RowsAffected())
			a.More = q.prequeue > int64(a.Shuffled)
			shuffled = !a.More
		default:
			shuffled = true
		}
	}

	// Step 2: expire admissions that no longer count.
	tag, err := tx.Exec(ctx, expireAdmitted, eventID, now, ticketrush.QueueChunk)
	if err != nil {
		return nil, err
	}
	a.Expired = int(tag.RowsAffected())
	if a.Expired == ticketrush.QueueChunk {
		a.More = true
	}

	// Step 3: admit.
	if shuffled && !e.WaitingRoom.Paused && e.TicketQuantity > 0 {
		f, err := readQueueFigures(ctx, tx, eventID, now)
		if err != nil {
			return nil, err
		}
		n := ticketrush.AdmissionsAt(e.WaitingRoom, f.st.AdmittedLastMinute, f.st.Active, f.last, now)
		if n > 0 && f.st.Waiting > 0 {
			pass := now.Add(time.Duration(e.WaitingRoom.PassSeconds) * time.Second)
			var admitted int64
			err := tx.QueryRow(ctx, admitNext, eventID, n, now, pass).Scan(&admitted)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return nil, err
			}
			a.Admitted = int(admitted)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// randomKeys draws n shuffle keys from the cryptographic source.
func randomKeys(n int) ([]int64, error) {
	buf := make([]byte, 8*n)
	if _, err := rand.Read(buf); err != nil {
		return nil, fmt.Errorf("shuffle keys: %w", err)
	}
	keys := make([]int64, n)
	for i := range keys {
		keys[i] = int64(binary.LittleEndian.Uint64(buf[8*i:]))
	}
	return keys, nil
}
