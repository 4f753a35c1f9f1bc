package redis

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketrush/ticketrush"
)

// SchemaVersion is the data layout this package reads and writes. Migrate
// records it and converts data of an older layout:
//
//   - 1: a visitor's holds in a sorted set by name (PREFIX:{e:ID}:vholds)
//     and the tickets they bought in a hash (PREFIX:{e:ID}:vbought)
//   - 2: both in one hash, visitor -> "bought holds…" (PREFIX:{e:ID}:visitors),
//     so the per-visitor check is one HGET however many reservations the
//     event has
const SchemaVersion = 2

// DefaultPrefix starts every key when Options.Prefix is empty.
const DefaultPrefix = "tr"

// Reservation ids carry their event: id = eventID<<seqBits | number, where
// number counts the event's reservations from 1. An id alone thus names the
// event's hash slot, and ids stay below 2^53 so JavaScript clients read them
// exactly: 2^25 events of 2^28 reservations each.
const (
	seqBits  = 28
	seqMask  = 1<<seqBits - 1
	maxEvent = 1<<(53-seqBits) - 1
)

// Options configures a Store.
type Options struct {
	// Now is the store's clock. When nil, every script reads the time from
	// Redis itself (TIME), so all processes sharing one Redis share one
	// clock and hold expiry cannot be skewed between them. Tests set it to
	// move time without sleeping.
	Now ticketrush.Clock
	// Prefix starts every key, so that several stores (or tests) can share
	// one Redis without seeing each other. Default "tr". It must not contain
	// '{' or '}', which would break the hash tags.
	Prefix string
	// Cluster makes Open treat its URL as a Redis Cluster seed, with more
	// nodes in addr= query parameters (as goredis.ParseClusterURL reads it).
	Cluster bool
	// Dialer, when set, opens the connections to Redis instead of a plain
	// TCP (or TLS) dial: for tunnels, and for tests that put a relay in
	// between.
	Dialer func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Store is a ticketrush.Store on Redis or Redis Cluster. It is safe for
// concurrent use, and any number of processes may share one Redis.
type Store struct {
	rdb     goredis.UniversalClient
	now     ticketrush.Clock
	prefix  string
	cluster bool
}

var _ ticketrush.Store = (*Store)(nil)

//go:embed lua/*.lua
var luaFiles embed.FS

// Every change is one of these scripts; see lua/lib.lua for the keys they
// share and doc.go for why one script is one atomic change.
var (
	createEventScript     = script("create_event")
	reserveScript         = script("reserve")
	reserveBatchScript    = script("reserve_batch")
	purchaseScript        = script("purchase")
	cancelScript          = script("cancel")
	releaseExpiredScript  = script("release_expired")
	claimScript           = script("claim")
	unclaimScript         = script("unclaim")
	createFirstScript     = script("create_first")
	updateEventScript     = script("update_event")
	deleteEventScript     = script("delete_event")
	joinScript            = script("join")
	advanceScript         = script("advance")
	entryScript           = script("entry")
	queueStatsScript      = script("queue_stats")
	migrateVisitorsScript = script("migrate_visitors")
)

// releaseChunk is RELEASE_CHUNK in lua/lib.lua: the most expired holds one
// script call releases, so that no call blocks Redis for long when many
// holds expire at once (the five-minute mark after an opening).
const releaseChunk = 100

// script loads lua/name.lua, after lua/lib.lua for the scripts that need it.
func script(name string) *goredis.Script {
	body, err := luaFiles.ReadFile("lua/" + name + ".lua")
	if err != nil {
		panic(err)
	}
	if name == "claim" || name == "unclaim" || name == "create_first" || name == "migrate_visitors" {
		return goredis.NewScript(string(body))
	}
	lib, err := luaFiles.ReadFile("lua/lib.lua")
	if err != nil {
		panic(err)
	}
	return goredis.NewScript(string(lib) + "\n" + string(body))
}

// Open connects to the Redis at url: redis://[user:password@]host:port/N, or
// rediss:// for TLS, as goredis.ParseURL reads it (with opts.Cluster, as
// goredis.ParseClusterURL reads it). It checks that the server answers. It
// does not migrate; call Migrate before using a new database.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.Cluster {
		o, err := goredis.ParseClusterURL(url)
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		return openCluster(ctx, o, opts)
	}
	o, err := goredis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("redis: %w", err)
	}
	// A command whose reply was lost may have run, so it is never sent
	// again behind the caller's back (and the scripts keep no run records
	// here, see newRun): the caller gets EOutcomeUnknown and may retry with
	// its Idempotency-Key.
	if o.MaxRetries == 0 {
		o.MaxRetries = -1
	}
	o.ContextTimeoutEnabled = true
	if opts.Dialer != nil {
		o.Dialer = opts.Dialer
	}
	c := goredis.NewClient(o)
	c.AddHook(lostReplyHook{})
	s, err := newStore(c, opts, false)
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	// A cluster node refuses this store's batches (their keys span slots),
	// so say so now rather than at the first reserve.
	if info, err := s.rdb.Info(ctx, "cluster").Result(); err == nil && strings.Contains(info, "cluster_enabled:1") {
		s.Close()
		return nil, errors.New("redis: the server is a Redis Cluster node; open it in cluster mode")
	}
	return s, nil
}

// OpenCluster connects to the Redis Cluster that the nodes at addrs belong
// to (any one suffices; the client discovers the rest).
func OpenCluster(ctx context.Context, addrs []string, opts Options) (*Store, error) {
	if len(addrs) == 0 {
		return nil, errors.New("redis: no cluster address")
	}
	return openCluster(ctx, &goredis.ClusterOptions{Addrs: addrs}, opts)
}

func openCluster(ctx context.Context, o *goredis.ClusterOptions, opts Options) (*Store, error) {
	o.ContextTimeoutEnabled = true
	if opts.Dialer != nil {
		o.Dialer = opts.Dialer
	}
	// The cluster client sends a command again after a lost reply (up to
	// MaxRedirects times, the same loop that follows MOVED and ASK), so
	// every write script keeps a run record and answers a repeat as its
	// first run did. The hook sits on each node's client, under that loop,
	// so it sees every attempt.
	c := goredis.NewClusterClient(o)
	c.OnNewNode(func(n *goredis.Client) { n.AddHook(lostReplyHook{}) })
	s, err := newStore(c, opts, true)
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func newStore(rdb goredis.UniversalClient, opts Options, cluster bool) (*Store, error) {
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if strings.ContainsAny(prefix, "{}") {
		rdb.Close()
		return nil, fmt.Errorf("redis: key prefix %q contains a brace", prefix)
	}
	return &Store{rdb: rdb, now: opts.Now, prefix: prefix, cluster: cluster}, nil
}

// Migrate records the data layout's version under PREFIX:schema, and first
// converts data of an older layout (see SchemaVersion). Redis needs no
// schema; the record lets a later version of this package recognise data it
// must convert, and refuses data written by a newer one. Stop the servers
// of the older version before migrating: they would keep writing the old
// layout.
func (s *Store) Migrate(ctx context.Context) error {
	key := s.prefix + ":schema"
	v, err := s.rdb.Get(ctx, key).Int()
	switch {
	case errors.Is(err, goredis.Nil):
		return s.fail(s.rdb.SetNX(ctx, key, SchemaVersion, 0).Err())
	case err != nil:
		return s.fail(err)
	case v > SchemaVersion:
		return fmt.Errorf("redis: data has layout version %d, newer than this program's %d", v, SchemaVersion)
	case v == SchemaVersion:
		return nil
	}
	if v < 2 {
		if err := s.migrateVisitors(ctx); err != nil {
			return err
		}
	}
	return s.fail(s.rdb.Set(ctx, key, SchemaVersion, 0).Err())
}

// migrateVisitors moves every event's per-visitor data from layout 1's
// sorted set of holds and hash of tickets bought into layout 2's one hash,
// a chunk of migrateChunk per script call so that no call blocks Redis for
// long.
func (s *Store) migrateVisitors(ctx context.Context) error {
	ids, err := s.rdb.ZRange(ctx, s.prefix+":events", 0, -1).Result()
	if err != nil {
		return s.fail(err)
	}
	for _, id := range ids {
		b := s.prefix + ":{e:" + id + "}"
		keys := []string{b + ":vholds", b + ":vbought", b + ":visitors"}
		for cursor := "0"; ; {
			left, err := migrateVisitorsScript.Run(ctx, s.rdb, keys, migrateChunk, cursor).StringSlice()
			if err != nil {
				return fmt.Errorf("redis: migrating event %s's visitors: %w", id, s.fail(err))
			}
			if left[0] == "done" {
				break
			}
			cursor = left[1]
		}
	}
	return nil
}

// migrateChunk bounds the entries one migration script call moves.
const migrateChunk = 1000

// Ping reports whether Redis answers (every primary, on a cluster).
func (s *Store) Ping(ctx context.Context) error {
	if c, ok := s.rdb.(*goredis.ClusterClient); ok {
		return s.fail(c.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error {
			return n.Ping(ctx).Err()
		}))
	}
	return s.fail(s.rdb.Ping(ctx).Err())
}

// Close releases the store's connections.
func (s *Store) Close() error {
	return s.rdb.Close()
}

// AOFEnabled reports whether Redis keeps an append-only file (on every
// primary, on a cluster), so the caller can warn that without it a crash
// loses every change since the last snapshot. It reads INFO persistence, and
// CONFIG GET appendonly where INFO is disabled; it fails only when Redis
// allows neither.
func (s *Store) AOFEnabled(ctx context.Context) (bool, error) {
	one := func(ctx context.Context, c goredis.Cmdable) (bool, error) {
		info, err := c.Info(ctx, "persistence").Result()
		if err == nil {
			for _, line := range strings.Split(info, "\n") {
				if v, ok := strings.CutPrefix(strings.TrimSpace(line), "aof_enabled:"); ok {
					return v == "1", nil
				}
			}
		}
		cfg, cerr := c.ConfigGet(ctx, "appendonly").Result()
		if cerr != nil {
			return false, fmt.Errorf("redis: cannot tell whether AOF is on: %w", errors.Join(err, cerr))
		}
		return cfg["appendonly"] == "yes", nil
	}
	c, ok := s.rdb.(*goredis.ClusterClient)
	if !ok {
		return one(ctx, s.rdb)
	}
	var off atomic.Bool // the nodes answer concurrently
	err := c.ForEachMaster(ctx, func(ctx context.Context, n *goredis.Client) error {
		on, err := one(ctx, n)
		if !on {
			off.Store(true)
		}
		return err
	})
	return err == nil && !off.Load(), err
}

// Keys. Everything of one event shares the hash tag {e:ID}, so it lives in
// one Cluster slot and one script may change it atomically; events spread
// over the shards. The event index and the id counter live outside any
// event's slot.

func (s *Store) eventBase(id int64) string {
	return s.prefix + ":{e:" + strconv.FormatInt(id, 10) + "}"
}

// nk is NK in lua/lib.lua: the keys every event script takes first.
const nk = 12

// eventKeys are KEYS[1..nk] of every event script, in lua/lib.lua's order,
// with room for extra more. run names the call's run record (see
// newRun); "" for a script that keeps none.
func (s *Store) eventKeys(id int64, run string, extra int) []string {
	b := s.eventBase(id)
	return append(make([]string, 0, nk+extra), b, b+":res", b+":holds", b+":visitors",
		b+":q", b+":qstate", b+":qpre", b+":qshuffle", b+":qorder", b+":qactive", b+":qstamps",
		b+":run:"+run)
}

// newRun names one call's run record: the script writes its answer there
// so that the same call sent again answers as the first run did instead of
// running twice. Only the Cluster client sends a call again (after a lost
// reply, in the loop that follows MOVED and ASK); on a single Redis nothing
// does, so there it returns "" and the scripts keep no record. The name
// carries how long the record lives: past the context's deadline no
// attempt of this call can start, and runSlack covers one that started just
// before it.
func (s *Store) newRun(ctx context.Context) string {
	if !s.cluster {
		return ""
	}
	ttl := runSlack
	if d, ok := ctx.Deadline(); ok {
		ttl = min(max(time.Until(d)+runSlack, runSlack), time.Hour)
	}
	return runID() + ":" + strconv.FormatInt(int64(ttl/time.Second), 10)
}

// runSlack is the least time a run record is kept.
const runSlack = 30 * time.Second

// runID returns 24 random hex digits.
func runID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *Store) indexKey() string   { return s.prefix + ":events" }
func (s *Store) counterKey() string { return s.prefix + ":events:seq" }

// idemKey and idemField locate a visitor's Idempotency-Key record. On a
// single Redis the record lives with the visitor ({v:token}), across events,
// and the reserve script reads it atomically. On a cluster a script can only
// reach its event's slot, so the record lives with the event and a claim
// under the visitor binds the key to one event (see reserve.go).
func (s *Store) idemKey(eventID int64, visitor string) string {
	if s.cluster {
		return s.eventBase(eventID) + ":idem"
	}
	return s.prefix + ":{v:" + visitor + "}:idem"
}

func (s *Store) idemField(visitor, key string) string {
	if s.cluster {
		return visitor + " " + key
	}
	return key
}

func (s *Store) claimKey(visitor string) string {
	return s.prefix + ":{v:" + visitor + "}:claims"
}

// clockArg is the scripts' ARGV[1]: the injected clock's time in
// microseconds, or "" to make them read Redis' own TIME.
func (s *Store) clockArg() string {
	if s.now == nil {
		return ""
	}
	return strconv.FormatInt(s.now().UnixMicro(), 10)
}

// Reservation ids.

func reservationID(eventID, number int64) int64 { return eventID<<seqBits | number }

// splitID returns the event and number an id encodes; ok is false for an id
// no reservation can have.
func splitID(id int64) (eventID, number int64, ok bool) {
	eventID, number = id>>seqBits, id&seqMask
	return eventID, number, id > 0 && eventID >= 1 && eventID <= maxEvent && number >= 1
}

// Errors.

// fail turns a client error into the store's: a domain error passes
// through; a Redis that cannot be reached, or cannot serve the command right
// now, is EUnavailable; any other reply from Redis (a script bug, a wrong
// type) is an internal error. It suits reads, and writes that failed before
// anything was sent; see failWrite.
func (s *Store) fail(err error) error {
	if err == nil {
		return nil
	}
	var de *ticketrush.Error
	if errors.As(err, &de) {
		return err
	}
	var re goredis.Error
	if errors.As(err, &re) && !transient(err) {
		return fmt.Errorf("redis: %w", err)
	}
	return ticketrush.Unavailable(err)
}

// failWrite is fail for a write script called with a context from
// writing: when any attempt's reply was lost after the command went out
// (the connection broke or the deadline passed while waiting for the
// answer), the script may have run, and the outcome is EOutcomeUnknown.
// A failure before anything was sent (no connection, pool timeout, a
// context already done) stays EUnavailable.
func (s *Store) failWrite(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	var de *ticketrush.Error
	if errors.As(err, &de) {
		return err
	}
	if f, ok := ctx.Value(sentKey{}).(*sentFlag); (ok && f.lost.Load()) || lostReply(err) {
		return ticketrush.OutcomeUnknown(err)
	}
	return s.fail(err)
}

// lostReply reports whether err ended a command after it was written: a
// failed or timed-out read of the reply, or the connection closed under it.
// go-redis writes the whole command before it reads, and a failed write
// leaves the server an incomplete command it never runs.
func lostReply(err error) bool {
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Op == "read"
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

type sentKey struct{}

// sentFlag records, for one write, whether some attempt lost its reply.
// depth and setupFailed tell the command itself from the commands that set
// up a new connection for it (HELLO, SELECT…), which go-redis runs through
// the same hooks, nested, with the same context: a connection whose set-up
// failed never carried the command.
type sentFlag struct {
	lost        atomic.Bool
	depth       atomic.Int32
	setupFailed atomic.Bool
}

// writing returns ctx marked so that the hook records lost replies of the
// commands sent with it.
func writing(ctx context.Context) context.Context {
	return context.WithValue(ctx, sentKey{}, &sentFlag{})
}

// lostReplyHook marks the write's sentFlag when an attempt loses its reply.
// On a cluster it sits on every node's client, so it sees each attempt of
// the cluster client's retry loop, of which only the last error returns.
type lostReplyHook struct{}

func (lostReplyHook) DialHook(next goredis.DialHook) goredis.DialHook { return next }

func (lostReplyHook) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		f, ok := ctx.Value(sentKey{}).(*sentFlag)
		if !ok {
			return next(ctx, cmd)
		}
		defer f.depth.Add(-1)
		if f.depth.Add(1) > 1 {
			err := next(ctx, cmd)
			if brokenConn(err) {
				f.setupFailed.Store(true)
			}
			return err
		}
		f.setupFailed.Store(false)
		err := next(ctx, cmd)
		if err != nil && lostReply(err) && !f.setupFailed.Load() {
			f.lost.Store(true)
		}
		return err
	}
}

func (lostReplyHook) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		err := next(ctx, cmds)
		if f, ok := ctx.Value(sentKey{}).(*sentFlag); ok && f.depth.Load() > 0 && brokenConn(err) {
			f.setupFailed.Store(true)
		}
		return err
	}
}

// brokenConn reports whether err broke the connection (rather than being
// Redis' answer).
func brokenConn(err error) bool {
	var ne net.Error
	return err != nil && (errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF))
}

// transient lists the replies of a Redis that works but cannot serve this
// command at the moment: loading, failing over, out of memory, or busy with
// a long script.
func transient(err error) bool {
	for _, p := range []string{"LOADING", "CLUSTERDOWN", "MASTERDOWN", "READONLY", "BUSY",
		"TRYAGAIN", "NOREPLICAS", "OOM", "MISCONF", "MOVED", "ASK"} {
		if goredis.HasErrorPrefix(err, p) {
			return true
		}
	}
	return false
}

// outcome maps a script's "!code" answer to a domain error.
func outcome(answer string) error {
	code, arg, _ := strings.Cut(strings.TrimPrefix(answer, "!"), " ")
	switch code {
	case ticketrush.EEventNotFound:
		return ticketrush.ErrEventNotFound()
	case ticketrush.EReservationNotFound:
		return ticketrush.ErrReservationNotFound()
	case ticketrush.ESaleNotStarted:
		return ticketrush.ErrSaleNotStarted()
	case ticketrush.EVisitorLimit:
		limit, _ := strconv.ParseInt(arg, 10, 64)
		return ticketrush.ErrVisitorLimit(limit)
	case ticketrush.ENotEnoughTickets:
		return ticketrush.ErrNotEnoughTickets()
	case ticketrush.EIdempotencyKeyReused:
		return ticketrush.ErrIdempotencyKeyReused()
	case ticketrush.EAlreadyPurchased:
		return ticketrush.ErrAlreadyPurchased()
	case ticketrush.ECancelled:
		return ticketrush.ErrCancelled()
	case ticketrush.EExpired:
		return ticketrush.ErrExpired()
	case ticketrush.ESaleClosed:
		return ticketrush.ErrSaleClosed()
	case ticketrush.EOrderLimit:
		n, _ := strconv.ParseInt(arg, 10, 64)
		return ticketrush.ErrOrderLimit(n)
	case ticketrush.EAdmissionRequired:
		return ticketrush.ErrAdmissionRequired()
	case ticketrush.EAdmissionInvalid:
		if arg == "used" {
			return ticketrush.ErrAdmissionUsed()
		}
		return ticketrush.ErrAdmissionInvalid()
	case ticketrush.EAdmissionExpired:
		return ticketrush.ErrAdmissionExpired()
	case ticketrush.EEventHasReservations:
		return ticketrush.ErrEventHasReservations()
	case ticketrush.EWaitingRoomNotFound:
		return ticketrush.ErrWaitingRoomNotFound()
	case ticketrush.ENotInQueue:
		return ticketrush.ErrNotInQueue()
	case ticketrush.EQueueNotOpen:
		return ticketrush.ErrQueueNotOpen()
	case ticketrush.EChallengeFailed:
		return ticketrush.ErrChallengeUsed()
	case "ids_exhausted":
		return errors.New("redis: the event has used all its reservation ids")
	}
	return fmt.Errorf("redis: unexpected script answer %q", answer)
}

// Decoding.

func micros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// parseRecord decodes a reservation record (see lua/lib.lua) of the given
// event and number.
func parseRecord(eventID, number int64, rec string) (*ticketrush.Reservation, error) {
	f := strings.SplitN(rec, " ", 7)
	if len(f) != 7 {
		return nil, fmt.Errorf("redis: bad reservation record %q", rec)
	}
	var n [4]int64
	for i, s := range []string{f[1], f[3], f[4], f[5]} {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis: bad reservation record %q", rec)
		}
		n[i] = v
	}
	return &ticketrush.Reservation{
		ID:             reservationID(eventID, number),
		EventID:        eventID,
		UserUID:        f[2],
		Status:         f[0],
		Amount:         n[0],
		ExpiresAt:      micros(n[1]),
		CreatedAt:      micros(n[2]),
		UpdatedAt:      micros(n[3]),
		IdempotencyKey: f[6],
	}, nil
}

// parseNumbered decodes a script's "number record" answer.
func parseNumbered(eventID int64, answer string) (*ticketrush.Reservation, error) {
	num, rec, _ := strings.Cut(answer, " ")
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("redis: bad script answer %q", answer)
	}
	return parseRecord(eventID, n, rec)
}
