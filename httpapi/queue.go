package httpapi

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/batch"
	"github.com/ticketrush/ticketrush/ratelimit"
)

// DefaultQueueCacheTTL is how long a node serves an event's queue figures
// (the event and its QueueStats) from memory before reading them again:
// polls then cost the database one read per event per node per interval,
// however many visitors poll.
const DefaultQueueCacheTTL = 500 * time.Millisecond

// WaitingRoomConfig configures the waiting room's HTTP side. Zero values
// take the defaults.
type WaitingRoomConfig struct {
	// PassKeys sign and verify admission passes and join challenges: the
	// first signs, all verify. Every node must share them. Empty means a
	// key of this process only (see RandomPassKey).
	PassKeys []PassKey
	// Verifiers are asked, after the built-in proof of work, whether a
	// join may go ahead (Turnstile, hCaptcha, …).
	Verifiers []JoinVerifier
	// JoinsPerSecond and JoinBurst are the join quota per client IP (IPv6
	// per /64) and per visitor token; 0 turns it off. TrustedProxies are
	// the proxies whose X-Forwarded-For the quota believes.
	JoinsPerSecond float64
	JoinBurst      int
	TrustedProxies []netip.Prefix
	// JoinShared, when set, keeps the join quota's buckets in a store
	// every node shares (the rate limit's), so a client's quota is the
	// same however many nodes its joins reach; nil counts per node.
	JoinShared ratelimit.Shared
	// MaxJoinBatch and MaxJoinQueue bound the group commit of joins per
	// event, as batch.Options does for reserves.
	MaxJoinBatch, MaxJoinQueue int
	// CacheTTL is how long queue figures are served from memory; 0 means
	// DefaultQueueCacheTTL, negative turns the cache off. At most a
	// second, so every node sees the queue move at least once a second.
	CacheTTL time.Duration
	// Now is the clock passes and challenges are timed by; nil means
	// time.Now. It must agree with the store's.
	Now func() time.Time
}

// waitingRoom is the server's waiting-room state: keys, caches, the join
// group commit and the join quota.
type waitingRoom struct {
	queues    ticketrush.Queues
	keys      *keyring
	challenge *challenger
	verifiers []JoinVerifier
	rooms     *roomCache
	entries   *entryCache
	joins     *batch.Group[ticketrush.JoinRequest, ticketrush.JoinResult]
	limiter   *ratelimit.Limiter
	now       func() time.Time
	metrics   *queueMetrics
}

func newWaitingRoom(s *Server, cfg WaitingRoomConfig, reg prometheus.Registerer) *waitingRoom {
	wr := &waitingRoom{queues: s.store, now: cfg.Now, metrics: newQueueMetrics(reg)}
	if wr.now == nil {
		wr.now = time.Now
	}
	keys := cfg.PassKeys
	if len(keys) == 0 {
		keys = []PassKey{RandomPassKey()}
	}
	wr.keys = newKeyring(keys)
	wr.challenge = &challenger{keys: wr.keys}
	wr.verifiers = append([]JoinVerifier{proofOfWork{c: wr.challenge, entry: wr.entry}}, cfg.Verifiers...)
	ttl := cfg.CacheTTL
	if ttl == 0 {
		ttl = DefaultQueueCacheTTL
	}
	ttl = min(ttl, time.Second)
	wr.rooms = &roomCache{ttl: ttl, load: func(ctx context.Context, id int64) roomSnap {
		return loadRoom(ctx, s.store, wr.queues, id)
	}, timeout: s.timeout}
	wr.entries = newEntryCache(maxCachedEntries)
	wr.joins = batch.NewGroup(func(ctx context.Context, eventID int64, reqs []ticketrush.JoinRequest) ([]ticketrush.JoinResult, error) {
		return wr.queues.JoinQueue(ctx, eventID, reqs)
	}, batch.Options{MaxBatch: cfg.MaxJoinBatch, MaxQueue: cfg.MaxJoinQueue, Timeout: s.timeout})
	if cfg.JoinsPerSecond > 0 {
		wr.limiter = ratelimit.New(ratelimit.Config{
			PerSecond:      cfg.JoinsPerSecond,
			Burst:          cfg.JoinBurst,
			TrustedProxies: cfg.TrustedProxies,
			Shared:         cfg.JoinShared,
			KeyPrefix:      "join:",
			Logger:         s.log,
		})
	}
	return wr
}

// Close waits for the join batches in flight; call it after the HTTP
// server has stopped taking requests.
func (s *Server) Close() {
	s.wr.joins.Close()
	if s.checkout != nil {
		s.checkout.Close()
	}
}

// QueueAdvanced records one AdvanceQueue outcome; pass it as the advanced
// callback of ticketrush.KeepQueues.
func (s *Server) QueueAdvanced(eventID int64, a *ticketrush.QueueAdvance) {
	s.wr.metrics.advanced(a)
	if a.Admitted > 0 || a.Shuffled > 0 || a.Expired > 0 {
		// This node moved the queue: its pollers need not wait for the
		// cache to run out to see it.
		s.wr.rooms.expire(eventID)
	}
}

// QueueStatus is a visitor's place in a queue on the wire. Every field is
// present; those that do not apply in a state are null.
type QueueStatus struct {
	EventID              int64   `json:"event_id"`
	State                string  `json:"state"`
	Position             *int64  `json:"position"`
	Ahead                *int64  `json:"ahead"`
	EstimatedWaitSeconds *int64  `json:"estimated_wait_seconds"`
	Pass                 *string `json:"pass"`
	PassExpiresAt        *Time   `json:"pass_expires_at"`
}

// Challenge is a join challenge on the wire.
type Challenge struct {
	Challenge string `json:"challenge"`
	Bits      int64  `json:"bits"`
	ExpiresAt Time   `json:"expires_at"`
}

// QueueStats are an event's queue figures on the wire, in the admin stats.
type QueueStats struct {
	EventID            int64 `json:"event_id"`
	Prequeue           int64 `json:"prequeue"`
	Waiting            int64 `json:"waiting"`
	Serving            int64 `json:"serving"`
	Tail               int64 `json:"tail"`
	Shuffled           bool  `json:"shuffled"`
	Admitted           int64 `json:"admitted"`
	AdmittedLastMinute int64 `json:"admitted_last_minute"`
	Active             int64 `json:"active"`
	Available          int64 `json:"available"`
	Held               int64 `json:"held"`
}

func newQueueStats(st *ticketrush.QueueStats) QueueStats {
	return QueueStats{
		EventID: st.EventID, Prequeue: st.Prequeue, Waiting: st.Waiting, Serving: st.Serving,
		Tail: st.Tail, Shuffled: st.Shuffled, Admitted: st.Admitted,
		AdmittedLastMinute: st.AdmittedLastMinute, Active: st.Active,
		Available: st.Available, Held: st.Held,
	}
}

// queueChallenge issues a proof-of-work challenge for a join.
func (s *Server) queueChallenge(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	token, err := visitorToken(r, false)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if token == "" {
		token = uuid.NewString()
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	e, err := s.wr.room(ctx, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	bits := e.WaitingRoom.ChallengeBits
	var en *ticketrush.QueueEntry
	if bits > 0 && r.Header.Get(headerVisitorToken) != "" {
		// A new token has no entry; a known one's challenge is for its
		// next entry. With no challenge asked, none is checked.
		if en, err = s.wr.entry(ctx, id, token); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	ch, exp := s.wr.challenge.issue(id, token, bits, nextAttempt(en), s.wr.now())
	w.Header().Set(headerVisitorToken, token)
	writeJSON(w, http.StatusOK, Envelope[Challenge]{Data: Challenge{Challenge: ch, Bits: bits, ExpiresAt: Time{exp}}})
}

// joinHandler is joinQueue behind the join quota, when there is one.
func (s *Server) joinHandler() http.HandlerFunc {
	if s.wr.limiter == nil {
		return s.joinQueue
	}
	return s.wr.limiter.Wrap(http.HandlerFunc(s.joinQueue)).ServeHTTP
}

// joinQueue joins the visitor to the event's queue, group-committed with
// the other joins of the event.
func (s *Server) joinQueue(w http.ResponseWriter, r *http.Request) {
	status, err := s.doJoin(w, r)
	s.wr.metrics.joined(status, err)
	if err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) doJoin(w http.ResponseWriter, r *http.Request) (int, error) {
	q := s.store
	id, err := pathID(r)
	if err != nil {
		return 0, err
	}
	token, err := visitorToken(r, false)
	if err != nil {
		return 0, err
	}
	// A room without a challenge takes a join without a body, and a
	// bodyless request needs no Content-Type.
	var body []byte
	if r.ContentLength != 0 {
		if body, err = readBody(w, r); err != nil {
			return 0, err
		}
	}
	challenge, nonce, err := decodeJoin(body)
	if err != nil {
		return 0, err
	}
	if token == "" {
		token = uuid.NewString()
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	e, err := s.wr.room(ctx, id)
	if err != nil {
		return 0, err
	}
	attempt := JoinAttempt{Event: e, Visitor: token, Challenge: challenge, Nonce: nonce, Request: r, Now: s.wr.now()}
	var proof string
	for _, v := range s.wr.verifiers {
		p, err := v.VerifyJoin(ctx, attempt)
		if err != nil {
			return 0, err
		}
		if proof == "" {
			// The built-in proof of work goes first: its challenge is the
			// one a visitor may not reuse for a new entry.
			proof = p
		}
	}
	res, err := s.wr.joins.Do(ctx, id, ticketrush.JoinRequest{Visitor: token, Challenge: proof})
	if err == nil {
		err = res.Err
	}
	if err != nil {
		if ticketrush.ErrorCode(err) == ticketrush.EQueueNotOpen {
			retryWhenOpen(w, e, s.wr.now())
		}
		return 0, err
	}
	s.wr.entries.put(e, res.Entry)
	snap := s.wr.rooms.get(ctx, id)
	st := snap.stats
	if st == nil {
		if st, err = q.QueueStats(ctx, id); err != nil {
			return 0, err
		}
	}
	status := http.StatusOK
	if res.Created {
		status = http.StatusCreated
	}
	s.writeQueueStatus(w, status, token, e, st, res.Entry)
	return status, nil
}

// retryWhenOpen tells a join refused with EQueueNotOpen when the queue
// opens: at PrequeueOpensAt, or at SaleStartsAt when there is no pre-queue
// (or it has opened and the sale has not, as the store then decides).
func retryWhenOpen(w http.ResponseWriter, e *ticketrush.Event, now time.Time) {
	var opens *time.Time
	if p := e.WaitingRoom.PrequeueOpensAt; p != nil && now.Before(*p) {
		opens = p
	} else if e.SaleStartsAt != nil && now.Before(*e.SaleStartsAt) {
		opens = e.SaleStartsAt
	}
	secs := int64(1)
	if opens != nil {
		secs = max(secs, int64((opens.Sub(now)+time.Second-1)/time.Second))
	}
	w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
}

// decodeJoin reads a join body: empty, or {"challenge","nonce"} (each a
// string or null).
func decodeJoin(body []byte) (challenge, nonce string, err error) {
	if len(body) == 0 {
		return "", "", nil
	}
	m, err := decodeObject(body)
	if err != nil {
		return "", "", err
	}
	f := newForm(m)
	challenge, _ = f.OptString("challenge")
	nonce, _ = f.OptString("nonce")
	return challenge, nonce, f.Err()
}

// getQueue reads the visitor's place. A waiting visitor whose position is
// behind the queue's serving counter, or a pre-queue visitor before the
// shuffle, is answered from this node's memory without a database read.
func (s *Server) getQueue(w http.ResponseWriter, r *http.Request) {
	state, err := s.doGetQueue(w, r)
	s.wr.metrics.polled(state, err)
	if err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) doGetQueue(w http.ResponseWriter, r *http.Request) (string, error) {
	q := s.store
	id, err := pathID(r)
	if err != nil {
		return "", err
	}
	token, err := visitorToken(r, true)
	if err != nil {
		return "", err
	}
	// The room's cache loads under a deadline of its own, and a poll
	// answered from memory needs none: the request's deadline (a timer
	// per request) is made only for the read of a missed entry.
	snap := s.wr.rooms.get(r.Context(), id)
	if snap.err != nil {
		return "", snap.err
	}
	entry, hit := s.wr.entries.lookup(snap, token)
	s.wr.metrics.cache(hit)
	if !hit {
		ctx, cancel := s.ctx(r)
		entry, err = q.QueueEntry(ctx, id, token)
		cancel()
		if err != nil {
			return "", err
		}
		s.wr.entries.put(snap.event, entry)
	}
	st := s.writeQueueStatus(w, http.StatusOK, token, snap.event, snap.stats, entry)
	return st, nil
}

// writeQueueStatus answers with the visitor's place and a Retry-After, and
// returns the state it reported.
func (s *Server) writeQueueStatus(w http.ResponseWriter, status int, token string, e *ticketrush.Event, st *ticketrush.QueueStats, entry *ticketrush.QueueEntry) string {
	v, retry := queueView(e, st, entry, s.wr.now())
	if v.State == ticketrush.QueueAdmitted && entry.PassExpiresAt != nil {
		pass, err := s.wr.keys.sign(Pass{EventID: e.ID, Visitor: token, Attempt: entry.Attempt, ExpiresAt: *entry.PassExpiresAt})
		if err == nil {
			v.Pass = &pass
		}
	}
	h := w.Header()
	h.Set(headerVisitorToken, token)
	h.Set("Retry-After", strconv.FormatInt(retry, 10))
	writeBody(w, status, appendQueueStatus(make([]byte, 0, 256), &v))
	return v.State
}

// queueView describes an entry as the API shows it, with the seconds a
// client should wait before polling again: about a tenth of its expected
// wait (so a visitor far back polls rarely, one near the front every
// second), jittered so that pollers who joined together spread out,
// and spread over a few seconds at sale start, when the whole pre-queue
// would otherwise poll at once. The pass is left to the caller.
func queueView(e *ticketrush.Event, st *ticketrush.QueueStats, en *ticketrush.QueueEntry, now time.Time) (QueueStatus, int64) {
	v := QueueStatus{EventID: e.ID, State: en.State}
	room := e.WaitingRoom
	if room == nil {
		room = &ticketrush.WaitingRoom{AdmitPerMinute: 1}
	}
	soldOut := e.SaleClosed || (st != nil && st.Available == 0 && st.Held == 0)
	pos := func() {
		if en.Position > 0 {
			p := en.Position
			v.Position = &p
		}
	}
	switch en.State {
	case ticketrush.QueueAdmitted:
		if soldOut && en.ReservationID == 0 {
			// An unused pass can only meet not_enough_tickets now.
			v.State = ticketrush.QueueSoldOut
			return v, 30
		}
		pos()
		zero := int64(0)
		v.Ahead, v.EstimatedWaitSeconds = &zero, &zero
		if en.PassExpiresAt != nil {
			v.PassExpiresAt = &Time{*en.PassExpiresAt}
		}
		if en.ReservationID != 0 {
			return v, 10 // the pass is used: nothing to wait for
		}
		return v, 2
	case ticketrush.QueueExpired:
		if soldOut {
			v.State = ticketrush.QueueSoldOut
			return v, 30
		}
		return v, 5
	}
	// prequeue or waiting
	switch {
	case soldOut:
		v.State = ticketrush.QueueSoldOut
		return v, 30
	case room.Paused:
		v.State = ticketrush.QueuePaused
		pos()
		if en.Position > 0 && st != nil {
			ahead := max(en.Position-st.Serving-1, 0)
			v.Ahead = &ahead
		}
		return v, 5 + rand.Int64N(6)
	case en.State == ticketrush.QueuePrequeue || en.Position == 0:
		until := int64(0)
		if e.SaleStartsAt != nil {
			until = int64(e.SaleStartsAt.Sub(now) / time.Second)
		}
		if until > 8 {
			return v, min(until/2, 30)
		}
		// The shuffle is about to run or running: spread the pre-queue's
		// polls over five seconds after it.
		return v, max(until, 0) + 1 + rand.Int64N(5)
	}
	pos()
	serving := int64(0)
	if st != nil {
		serving = st.Serving
	}
	ahead := max(en.Position-serving-1, 0)
	v.Ahead = &ahead
	wait := ((ahead+1)*60 + room.AdmitPerMinute - 1) / room.AdmitPerMinute
	if e.SaleStartsAt != nil && now.Before(*e.SaleStartsAt) {
		wait += int64(e.SaleStartsAt.Sub(now)/time.Second) + 1
	}
	v.EstimatedWaitSeconds = &wait
	retry := min(max(wait/10, 1), 20)
	return v, retry + rand.Int64N(retry/4+1)
}

// entry reads the visitor's entry, nil when it never joined.
func (wr *waitingRoom) entry(ctx context.Context, eventID int64, visitor string) (*ticketrush.QueueEntry, error) {
	en, err := wr.queues.QueueEntry(ctx, eventID, visitor)
	if ticketrush.ErrorCode(err) == ticketrush.ENotInQueue {
		return nil, nil
	}
	return en, err
}

// room returns the event, refusing with EWaitingRoomNotFound when it has
// no waiting room, from the node's cache.
func (wr *waitingRoom) room(ctx context.Context, id int64) (*ticketrush.Event, error) {
	snap := wr.rooms.get(ctx, id)
	if snap.event == nil {
		return nil, snap.err
	}
	if snap.event.WaitingRoom == nil {
		return nil, errNoWaitingRoom()
	}
	return snap.event, nil
}

func errNoWaitingRoom() error {
	return ticketrush.Errorf(ticketrush.EWaitingRoomNotFound, "This event has no waiting room.")
}

// queueFigures returns an event's queue figures for the dashboard, read
// fresh; nil when it has no waiting room.
func (s *Server) queueFigures(ctx context.Context, id int64) (*QueueStats, error) {
	st, err := s.wr.queues.QueueStats(ctx, id)
	switch {
	case ticketrush.ErrorCode(err) == ticketrush.EWaitingRoomNotFound:
		return nil, nil
	case err != nil:
		return nil, err
	}
	q := newQueueStats(st)
	return &q, nil
}

// admission verifies the Admission-Pass of a reserve for eventID and
// returns the attempt it names (0 when none was sent). Signature, visitor
// and event are checked here, without a database read; whether the pass
// was used is the store's business (ticketrush.CheckAdmission). An expired
// pass is refused here unless the request has an Idempotency-Key: a retry
// of a reserve that succeeded must still get its answer from the store.
// A pass sent for an event without a waiting room is ignored.
func (s *Server) admission(ctx context.Context, r *http.Request, eventID int64, visitor, key string) (int64, error) {
	v := r.Header.Values(headerAdmissionPass)
	if len(v) == 0 || (len(v) == 1 && v[0] == "") {
		return 0, nil
	}
	var err error
	var p Pass
	if len(v) > 1 {
		err = ticketrush.Errorf(ticketrush.EAdmissionInvalid, "Send one Admission-Pass header.")
	} else if p, err = s.wr.keys.verify(v[0], eventID, visitor); err == nil {
		if key != "" || s.wr.now().Before(p.ExpiresAt) {
			return p.Attempt, nil
		}
		err = ticketrush.Errorf(ticketrush.EAdmissionExpired, "This Admission-Pass has expired: join the queue again.")
	}
	// Refuse only for an event that has a waiting room; an unknown event
	// is answered as such, as it is without a pass.
	snap := s.wr.rooms.get(ctx, eventID)
	if snap.event != nil && snap.event.WaitingRoom == nil {
		return 0, nil
	}
	if snap.event == nil && ticketrush.ErrorCode(snap.err) == ticketrush.EEventNotFound {
		return 0, snap.err
	}
	return 0, err
}

// roomSnap is what a node knows of one event's queue.
type roomSnap struct {
	event *ticketrush.Event
	stats *ticketrush.QueueStats
	err   error
}

func loadRoom(ctx context.Context, s ticketrush.Store, q ticketrush.Queues, id int64) roomSnap {
	e, err := s.Event(ctx, id)
	if err != nil {
		return roomSnap{err: err}
	}
	if e.WaitingRoom == nil {
		return roomSnap{event: e, err: errNoWaitingRoom()}
	}
	st, err := q.QueueStats(ctx, id)
	if err != nil {
		return roomSnap{event: e, err: err}
	}
	return roomSnap{event: e, stats: st}
}

// maxCachedRooms bounds the events a node keeps figures for: a client
// polling made-up ids must not grow memory without end.
const maxCachedRooms = 4096

// roomCache keeps each event's snapshot for ttl, loading it once per
// interval however many requests want it. A fresh snapshot is read without
// a lock: polls are the waiting room's most frequent request.
type roomCache struct {
	ttl     time.Duration
	timeout time.Duration
	load    func(ctx context.Context, id int64) roomSnap

	cells   sync.Map // int64 → *roomCell
	n       atomic.Int64
	pruneMu sync.Mutex
}

type roomCell struct {
	mu  sync.Mutex // held by the one request loading
	cur atomic.Pointer[timedSnap]
}

type timedSnap struct {
	snap roomSnap
	at   time.Time
	// expired marks a snapshot this node knows to be behind (it moved the
	// queue): the next request reloads it, others may still be answered
	// from it meanwhile.
	expired bool
}

// maxStaleRoom bounds the age of a snapshot answered while another request
// reloads it: polls see figures at most this old.
const maxStaleRoom = time.Second

func (c *roomCache) get(ctx context.Context, id int64) roomSnap {
	if c.ttl < 0 {
		// No cache: every request loads, under the request timeout.
		lctx, cancel := context.WithTimeout(ctx, c.timeout)
		defer cancel()
		return c.load(lctx, id)
	}
	v, ok := c.cells.Load(id)
	if !ok {
		var loaded bool
		v, loaded = c.cells.LoadOrStore(id, &roomCell{})
		if !loaded && c.n.Add(1) > maxCachedRooms {
			c.prune()
		}
	}
	cell := v.(*roomCell)
	ts := cell.cur.Load()
	if ts != nil && !ts.expired && time.Since(ts.at) < c.ttl {
		return ts.snap
	}
	if !cell.mu.TryLock() {
		// Another request is loading. A snapshot young enough is answered
		// meanwhile, so the event's polls never all wait for one read
		// (which they did every time an advance moved the queue).
		if ts != nil && ts.snap.err == nil && time.Since(ts.at) < maxStaleRoom {
			return ts.snap
		}
		cell.mu.Lock()
	}
	defer cell.mu.Unlock()
	if ts := cell.cur.Load(); ts != nil && !ts.expired && time.Since(ts.at) < c.ttl {
		return ts.snap // another request loaded it while this one waited
	}
	// The load has its own deadline, so one caller giving up does not
	// fail the others waiting on cell.mu.
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.timeout)
	snap := c.load(lctx, id)
	cancel()
	if snap.event == nil && ticketrush.ErrorCode(snap.err) == ticketrush.EEventNotFound {
		// Not remembered: the event may be created the next moment (on
		// any node), and its first visitors must not be told it does not
		// exist. The rate limit bounds what polling made-up ids costs.
		cell.cur.Store(nil)
		return snap
	}
	cell.cur.Store(&timedSnap{snap: snap, at: time.Now()})
	return snap
}

// prune drops stale cells, then as many others as needed to get back to
// half the cap.
func (c *roomCache) prune() {
	if !c.pruneMu.TryLock() {
		return // another request is at it
	}
	defer c.pruneMu.Unlock()
	c.cells.Range(func(k, v any) bool {
		if ts := v.(*roomCell).cur.Load(); ts == nil || time.Since(ts.at) >= c.ttl {
			c.forget(k.(int64))
		}
		return true
	})
	c.cells.Range(func(k, v any) bool {
		if c.n.Load() <= maxCachedRooms/2 {
			return false
		}
		c.forget(k.(int64))
		return true
	})
}

// expire marks an event's snapshot behind, after this node moved its
// queue: the next request reloads it while the others are answered from it.
func (c *roomCache) expire(id int64) {
	v, ok := c.cells.Load(id)
	if !ok {
		return
	}
	cell := v.(*roomCell)
	if ts := cell.cur.Load(); ts != nil && !ts.expired {
		cell.cur.CompareAndSwap(ts, &timedSnap{snap: ts.snap, at: ts.at, expired: true})
	}
}

// forget drops an event's snapshot, after its settings changed: no request
// is answered from the old one.
func (c *roomCache) forget(id int64) {
	if _, ok := c.cells.LoadAndDelete(id); ok {
		c.n.Add(-1)
	}
}

// maxCachedEntries bounds the queue entries a node remembers (under 100
// bytes each with the map's own, so some 40 MB at most).
const maxCachedEntries = 1 << 19

// entryCache remembers the entries of visitors who wait, so that their
// polls need no database read while the queue has not reached them.
type entryCache struct {
	perShard int
	shards   [64]entryShard
}

type entryShard struct {
	mu sync.Mutex
	m  map[entryKey]cachedEntry
}

type entryKey struct {
	event   int64
	visitor uuid.UUID
}

// cachedEntry is what a poll needs of a waiting entry, kept small.
type cachedEntry struct {
	// eventUpdated is the event's UpdatedAt (Unix µs) when the entry was
	// read: any change of the event's settings (the room removed and set
	// again, whose queue then starts afresh) makes the entry be read again.
	eventUpdated int64
	position     int64
	attempt      int64
	prequeue     bool
}

func newEntryCache(max int) *entryCache {
	c := &entryCache{perShard: max / 64}
	for i := range c.shards {
		c.shards[i].m = make(map[entryKey]cachedEntry)
	}
	return c
}

func (c *entryCache) shard(k entryKey) *entryShard { return &c.shards[k.visitor[15]&63] }

// put remembers en if it is waiting or in the pre-queue, the states that
// only the queue's counters can end; otherwise it forgets it.
func (c *entryCache) put(e *ticketrush.Event, en *ticketrush.QueueEntry) {
	u, err := uuid.Parse(en.Visitor)
	if err != nil {
		return
	}
	k := entryKey{event: en.EventID, visitor: u}
	sh := c.shard(k)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if en.State != ticketrush.QueueWaiting && en.State != ticketrush.QueuePrequeue {
		delete(sh.m, k)
		return
	}
	if _, ok := sh.m[k]; !ok && len(sh.m) >= c.perShard {
		// Full: drop an arbitrary eighth (map order is random), which
		// costs those visitors one read each.
		n := len(sh.m) / 8
		for old := range sh.m {
			if n--; n < 0 {
				break
			}
			delete(sh.m, old)
		}
	}
	sh.m[k] = cachedEntry{eventUpdated: e.UpdatedAt.UnixMicro(), position: en.Position,
		attempt: en.Attempt, prequeue: en.State == ticketrush.QueuePrequeue}
}

// lookup returns the visitor's entry when memory is enough to know it: a
// waiting entry behind the serving counter is still waiting at the same
// position, and a pre-queue entry stays one until the shuffle.
func (c *entryCache) lookup(snap roomSnap, visitor string) (*ticketrush.QueueEntry, bool) {
	u, err := uuid.Parse(visitor)
	if err != nil || snap.stats == nil {
		return nil, false
	}
	k := entryKey{event: snap.event.ID, visitor: u}
	sh := c.shard(k)
	sh.mu.Lock()
	ce, ok := sh.m[k]
	sh.mu.Unlock()
	if !ok || ce.eventUpdated != snap.event.UpdatedAt.UnixMicro() {
		return nil, false
	}
	en := &ticketrush.QueueEntry{EventID: snap.event.ID, Visitor: visitor, Attempt: ce.attempt, Position: ce.position}
	switch {
	case !ce.prequeue && ce.position > snap.stats.Serving:
		en.State = ticketrush.QueueWaiting
		return en, true
	case ce.prequeue && !snap.stats.Shuffled:
		en.State = ticketrush.QueuePrequeue
		return en, true
	}
	return nil, false
}

// queueMetrics counts the waiting room's work.
type queueMetrics struct {
	joins     *prometheus.CounterVec
	polls     *prometheus.CounterVec
	cacheHits *prometheus.CounterVec
	steps     *prometheus.CounterVec

	pollStates          map[string]prometheus.Counter // read only once made
	cacheHit, cacheMiss prometheus.Counter
}

func newQueueMetrics(reg prometheus.Registerer) *queueMetrics {
	m := &queueMetrics{
		joins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ticketrush_queue_joins_total",
			Help: `Queue joins by outcome: "created" (a new entry), "existing" (the visitor's live entry), or the error code.`,
		}, []string{"outcome"}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ticketrush_queue_polls_total",
			Help: "Queue polls by the state answered, or the error code.",
		}, []string{"state"}),
		cacheHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ticketrush_queue_poll_cache_total",
			Help: `Polls answered from this node's memory ("hit") or with a database read of the entry ("miss").`,
		}, []string{"result"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ticketrush_queue_advanced_total",
			Help: `Queue entries moved by this node's queue keeper: "shuffled", "admitted" or "expired".`,
		}, []string{"step"}),
	}
	reg.MustRegister(m.joins, m.polls, m.cacheHits, m.steps)
	// Polls are the most frequent request: their counters are looked up
	// once, not by label on every poll.
	m.pollStates = map[string]prometheus.Counter{}
	for _, st := range []string{ticketrush.QueuePrequeue, ticketrush.QueueWaiting, ticketrush.QueueAdmitted,
		ticketrush.QueueExpired, ticketrush.QueueSoldOut, ticketrush.QueuePaused} {
		m.pollStates[st] = m.polls.WithLabelValues(st)
	}
	m.cacheHit, m.cacheMiss = m.cacheHits.WithLabelValues("hit"), m.cacheHits.WithLabelValues("miss")
	return m
}

func (m *queueMetrics) joined(status int, err error) {
	switch {
	case err != nil:
		m.joins.WithLabelValues(errorLabel(err)).Inc()
	case status == http.StatusCreated:
		m.joins.WithLabelValues("created").Inc()
	default:
		m.joins.WithLabelValues("existing").Inc()
	}
}

func (m *queueMetrics) polled(state string, err error) {
	if err != nil {
		m.polls.WithLabelValues(errorLabel(err)).Inc()
		return
	}
	if c, ok := m.pollStates[state]; ok {
		c.Inc()
		return
	}
	m.polls.WithLabelValues(state).Inc()
}

func (m *queueMetrics) cache(hit bool) {
	if hit {
		m.cacheHit.Inc()
	} else {
		m.cacheMiss.Inc()
	}
}

func (m *queueMetrics) advanced(a *ticketrush.QueueAdvance) {
	if a.Shuffled > 0 {
		m.steps.WithLabelValues("shuffled").Add(float64(a.Shuffled))
	}
	if a.Admitted > 0 {
		m.steps.WithLabelValues("admitted").Add(float64(a.Admitted))
	}
	if a.Expired > 0 {
		m.steps.WithLabelValues("expired").Add(float64(a.Expired))
	}
}

// errorLabel is an error's code as a metric label: one of the API's codes,
// so a client cannot make up label values.
func errorLabel(err error) string {
	code, _ := classify(err)
	return code
}
