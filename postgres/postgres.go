// Package postgres is the PostgreSQL backend of ticketrush, on pgx.
//
// Two reserve strategies share one schema. Reserve is the original's: one
// transaction per request that locks the event row. ReserveBatch is group
// commit: one transaction decides a whole queue of requests for an event
// while holding that row once, in two round trips to the server.
//
// Locks are always taken in one order so no two transactions can wait on
// each other in a cycle: a reserve locks the event row, then touches
// expired reservation rows only with SKIP LOCKED, then inserts its
// reservations sorted by visitor and Idempotency-Key (one global order for
// the unique index's entries); cancel, and purchase of an expired hold,
// lock the event row, then the reservation row; a batch of purchases and
// cancels (SettleBatch) locks the event rows it may restock in id order,
// then its holds in id order; the sweeper locks event
// rows in id order, then
// reservation rows with SKIP LOCKED, so it never holds a hold a reserve
// would skip while it waits for a hot event. The waiting room locks an
// event's queue row before its entries. Deadlock and serialization failures
// are retried anyway, as a safety net, and one that remains is
// EUnavailable: the transaction was rolled back.
//
// A failure before a COMMIT was sent is EUnavailable (nothing applied); a
// lost answer to a COMMIT, or to a write that commits on its own, is
// EOutcomeUnknown.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jackc/puddle/v2"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"

	"github.com/ticketrush/ticketrush"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Defaults for Options.
const (
	// DefaultMaxConns keeps the pool small: under a rush the batcher queues
	// in Go, and more connections would only contend on the hot event row.
	DefaultMaxConns = 8
	// DefaultConnectTimeout bounds a connection attempt when the URL sets
	// no connect_timeout, so an unreachable server fails fast.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultStatementTimeout and DefaultLockTimeout are the server-side
	// limits every connection sets unless the URL sets its own: a
	// statement whose client has gone (a process killed, a network cut)
	// still ends, and no backend queues on a hot row lock for long.
	DefaultStatementTimeout = 30 * time.Second
	DefaultLockTimeout      = 5 * time.Second
	// cancelDelay is how long after a context ends pgx waits for the
	// server to answer the cancel request before closing the connection:
	// short, so a request still ends soon after its deadline when the
	// server cannot be reached at all.
	cancelDelay = 300 * time.Millisecond
)

// maxAttempts is how often a transaction is tried when PostgreSQL aborts it
// for a deadlock, a serialization failure or a concurrent duplicate
// Idempotency-Key.
const maxAttempts = 4

// Options configure a Store.
type Options struct {
	// Now is the clock for every timestamp the store writes or compares;
	// nil means time.Now.
	Now ticketrush.Clock
	// MaxConns is the pool size; 0 means DefaultMaxConns.
	MaxConns int32
	// EventConns caps the connections the lock strategy's reserves of one
	// event hold at once; others wait in Go for a turn. 0 means a quarter
	// of MaxConns (at least 1), which leaves the rest of the pool to
	// readiness checks, purchases and other events.
	EventConns int
}

// Store is a ticketrush.Store on PostgreSQL.
type Store struct {
	pool  *pgxpool.Pool
	clock ticketrush.Clock
	gates *gates
}

var _ ticketrush.Store = (*Store)(nil)

// Open connects to the database at url (postgres://… or a key=value DSN)
// and checks that it answers. It does not migrate: call Migrate.
// An unreachable server gives an EUnavailable error.
func Open(ctx context.Context, url string, opts Options) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "ticketrush"
	}
	for param, def := range map[string]time.Duration{
		"statement_timeout": DefaultStatementTimeout,
		"lock_timeout":      DefaultLockTimeout,
	} {
		if _, ok := cfg.ConnConfig.RuntimeParams[param]; !ok {
			cfg.ConnConfig.RuntimeParams[param] = fmt.Sprint(def.Milliseconds())
		}
	}
	// When a context ends mid-query, ask the server to cancel the query
	// rather than only dropping the socket: a dropped socket leaves the
	// backend running (or queued on a lock) until it next writes, while
	// the pool opens a replacement connection.
	cfg.ConnConfig.BuildContextWatcherHandler = func(pc *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: pc, DeadlineDelay: cancelDelay}
	}
	cfg.MaxConns = opts.MaxConns
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	eventConns := opts.EventConns
	if eventConns <= 0 {
		eventConns = max(int(cfg.MaxConns)/4, 1)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	s := &Store{pool: pool, clock: opts.Now, gates: newGates(eventConns)}
	if s.clock == nil {
		s.clock = time.Now
	}
	if err := s.Ping(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Migrate brings the schema up to date with the embedded migrations. Several
// processes may call it at once: a session advisory lock serializes them.
func (s *Store) Migrate(ctx context.Context) error {
	// The lock is per schema (the first of search_path), so migrations of
	// different schemas in one database never wait for each other.
	var schema string
	if err := s.pool.QueryRow(ctx, "SELECT coalesce(current_schema(), '')").Scan(&schema); err != nil {
		return s.fail("migrate", err)
	}
	h := fnv.New64a()
	h.Write([]byte("ticketrush migrations\x00" + schema))
	// The lock is retried every second, for up to five minutes.
	locker, err := lock.NewPostgresSessionLocker(
		lock.WithLockID(int64(h.Sum64())), lock.WithLockTimeout(1, 300))
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return s.migrate(ctx, goose.WithSessionLocker(locker))
}

func (s *Store) migrate(ctx context.Context, opts ...goose.ProviderOption) error {
	fsys, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		append(opts, goose.WithDisableGlobalRegistry(true))...)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return s.fail("migrate", err)
	}
	return nil
}

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return s.fail("ping", err)
	}
	return nil
}

// Close releases the store's connections.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// now is the store's clock in UTC at the microsecond precision PostgreSQL
// keeps, so what a method returns equals what a later read returns.
func (s *Store) now() time.Time {
	return s.clock().UTC().Truncate(time.Microsecond)
}

// fail turns err into what a Store method returns: domain errors pass
// through, an unreachable database becomes EUnavailable, anything else is
// an internal error naming the operation.
func (s *Store) fail(op string, err error) error {
	var de *ticketrush.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &de):
		return err
	case errors.As(err, new(*inDoubtError)):
		return ticketrush.OutcomeUnknown(fmt.Errorf("postgres: %s: %w", op, err))
	case unavailable(err), retryable(err):
		// A deadlock or serialization failure that outlived its retries
		// rolled the transaction back: nothing was applied.
		return ticketrush.Unavailable(fmt.Errorf("postgres: %s: %w", op, err))
	default:
		return fmt.Errorf("postgres: %s: %w", op, err)
	}
}

// inDoubtError marks a failure after a COMMIT was sent and before its
// answer came back: the transaction may or may not have committed.
type inDoubtError struct{ err error }

func (e *inDoubtError) Error() string { return "outcome unknown: " + e.err.Error() }
func (e *inDoubtError) Unwrap() error { return e.err }

// afterCommitSent classifies an error of a round trip that carried a
// COMMIT on a connection that was open when it began. An answer from the
// server (a PgError) means the transaction failed and was rolled back; any
// other error (a deadline, a cut connection) leaves the outcome unknown.
// pgconn's own "safe to retry" mark is no guide here: once a read has
// failed it reports the connection closed, and marks that safe, although
// the COMMIT had gone out.
func afterCommitSent(err error) error {
	var pe *pgconn.PgError
	if err == nil || errors.As(err, &pe) {
		return err
	}
	var de *ticketrush.Error
	if errors.As(err, &de) {
		return err
	}
	return &inDoubtError{err}
}

// unavailable reports whether err means the database could not be reached
// or did not answer in time, rather than a mistake in a query.
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),  // insufficient resources
			strings.HasPrefix(pe.Code, "57P"), // shutting down, cannot connect now
			pe.Code == "57014":                // statement_timeout or cancel
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) ||
		errors.As(err, &ce) ||
		errors.As(err, &ne) ||
		pgconn.Timeout(err) ||
		errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) ||
		errors.Is(err, puddle.ErrClosedPool)
}

// retryable reports whether PostgreSQL aborted a transaction that may well
// succeed when run again from the start.
func retryable(err error) bool {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return false
	}
	switch pe.Code {
	case "40P01", "40001": // deadlock detected, serialization failure
		return true
	case "23505": // another transaction committed the same Idempotency-Key first
		return pe.ConstraintName == "reservations_user_uid_idempotency_key_idx"
	}
	return false
}

// deadlocks counts the deadlocks PostgreSQL reported to this process, for
// tests: the lock order is meant to make it stay zero.
var deadlocks atomic.Int64

// retry runs fn until it succeeds, fails for a reason retrying cannot fix,
// or has been tried maxAttempts times.
func retry(ctx context.Context, fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "40P01" {
			deadlocks.Add(1)
		}
		if err == nil || attempt == maxAttempts || !retryable(err) {
			return err
		}
		t := time.NewTimer(time.Duration(attempt) * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// rollback ends a transaction left open on conn by a failed pipeline. When
// it cannot, the pool sees the open transaction on release and closes the
// connection, which rolls back on the server.
func rollback(conn *pgxpool.Conn) {
	pc := conn.Conn().PgConn()
	if pc.IsClosed() || pc.TxStatus() == 'I' {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, _ = conn.Exec(ctx, "ROLLBACK")
}

// Column lists, in the order scanEvent and scanReservation read them.
const (
	eventColumns = `id, name, ticket_quantity, capacity, hold_seconds, max_per_visitor,
	sale_starts_at, created_at, updated_at, max_per_order, hidden, sale_closed, waiting_room`
	reservationColumns = `id, event_id, user_uid, status, amount, expires_at,
	created_at, updated_at, coalesce(idempotency_key, '')`
	// returningColumns is RETURNING's list: a query reading it from a CTE
	// selects reservationColumns.
	returningColumns = `id, event_id, user_uid, status, amount, expires_at,
	created_at, updated_at, idempotency_key`
)

func scanEvent(row pgx.Row) (*ticketrush.Event, error) {
	var e ticketrush.Event
	var room []byte
	if err := row.Scan(&e.ID, &e.Name, &e.TicketQuantity, &e.Capacity, &e.HoldSeconds,
		&e.MaxPerVisitor, &e.SaleStartsAt, &e.CreatedAt, &e.UpdatedAt,
		&e.MaxPerOrder, &e.Hidden, &e.SaleClosed, &room); err != nil {
		return nil, err
	}
	w, err := decodeRoom(room)
	if err != nil {
		return nil, err
	}
	e.WaitingRoom = w
	if e.SaleStartsAt != nil {
		t := e.SaleStartsAt.UTC()
		e.SaleStartsAt = &t
	}
	e.CreatedAt = e.CreatedAt.UTC()
	e.UpdatedAt = e.UpdatedAt.UTC()
	return &e, nil
}

func scanReservation(row pgx.Row) (*ticketrush.Reservation, error) {
	var r ticketrush.Reservation
	if err := row.Scan(&r.ID, &r.EventID, &r.UserUID, &r.Status, &r.Amount, &r.ExpiresAt,
		&r.CreatedAt, &r.UpdatedAt, &r.IdempotencyKey); err != nil {
		return nil, err
	}
	r.ExpiresAt = r.ExpiresAt.UTC()
	r.CreatedAt = r.CreatedAt.UTC()
	r.UpdatedAt = r.UpdatedAt.UTC()
	return &r, nil
}

// rollbackTx ends tx if it is still open. It does not use the request's
// context: when that has ended (the usual reason to roll back), a rollback
// under it would fail at once and the pool would close a connection that a
// server-side cancel had left fit for use.
func rollbackTx(tx pgx.Tx) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = tx.Rollback(ctx)
}
