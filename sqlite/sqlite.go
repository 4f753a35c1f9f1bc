// Package sqlite implements ticketrush.Store on an embedded SQLite database
// file, the service's default backend.
//
// SQLite has one writer at a time. The store keeps that visible: every write
// goes through a pool of exactly one connection and runs as BEGIN IMMEDIATE,
// so a transaction holds the write lock from its first statement (the
// equivalent of the original's SELECT … FOR UPDATE on the event row) and
// writers queue in Go, under their context's deadline, instead of spinning on
// SQLITE_BUSY. Reads use a separate small pool; in WAL mode they see the last
// commit and never wait for the writer.
//
// Every connection runs in WAL mode with synchronous=FULL, so a transaction
// that returned from COMMIT is on disk and survives a power cut. That makes
// each commit cost an fsync, which is what ReserveBatch amortises.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/ticketrush/ticketrush"
	sqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

//go:embed migrations/*.sql
var migrations embed.FS

// readConns is the size of the read pool. Reads are short; a few
// connections keep them off the writer without loading the machine.
const readConns = 4

// pragmas are set on every connection. temp_store(MEMORY) keeps statement
// journals in memory: a batch's multi-row INSERT needs one (it may fail
// part-way inside the transaction), and past 64 KiB SQLite spilled it to a
// temporary file, one pwrite per page the batch touched (a third of a join
// batch's cost; BenchmarkJoinQueue 45 → 40 µs a join). A WAL of up to
// 10,000 pages (40 MB) before the automatic checkpoint, rather than 1,000:
// the checkpoint runs inside the commit that crosses the mark, and a
// longer WAL copies each page touched by many commits once (joins, whose
// visitor index takes random keys, touch about a page each: 40 → 31 µs).
const pragmas = "_pragma=journal_mode(WAL)" +
	"&_pragma=synchronous(FULL)" +
	"&_pragma=foreign_keys(ON)" +
	"&_pragma=temp_store(MEMORY)" +
	"&_pragma=wal_autocheckpoint(10000)"

// Waiting for another process's write lock. SQLite's own busy handler
// polls at growing intervals, up to 100 ms apart, while the process holding
// the lock takes it again microseconds after each commit: under load a
// second process could wait for seconds. So the write connection gives up
// almost at once (a busy_timeout of 1 ms) and begin retries every
// millisecond or so, for at most lockWait or until the caller's context
// ends. Readers keep a long busy_timeout: in WAL mode they wait only in rare
// cases, such as another process recovering the WAL.
const (
	writeBusyTimeout = "&_pragma=busy_timeout(1)"
	readBusyTimeout  = "&_pragma=busy_timeout(10000)"
	lockWait         = 10 * time.Second
	lockRetry        = time.Millisecond
)

// Options configures a Store.
type Options struct {
	// Now is the store's clock; nil means time.Now.
	Now ticketrush.Clock
}

// Store is a ticketrush.Store on one SQLite database file. It is safe for
// concurrent use, and several processes may open the same file.
type Store struct {
	wdb *sql.DB // one connection; every transaction is BEGIN IMMEDIATE
	rdb *sql.DB // a few read-only connections
	now ticketrush.Clock

	// Statements are prepared on first use, not in Open, because Open does
	// not migrate and SQLite cannot prepare against tables that do not exist
	// yet.
	st     atomic.Pointer[statements]
	stMu   sync.Mutex
	closer sync.Once
	cerr   error
}

var _ ticketrush.Store = (*Store)(nil)

// Open opens (creating if needed) the SQLite database file at path. It does
// not migrate; call Migrate before using a new database.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	// The path is escaped so that a '?' or '#' in it cannot be read as the
	// start of the DSN's parameters.
	file := "file:" + (&url.URL{Path: path}).EscapedPath()

	wdb, err := sql.Open("sqlite", file+"?"+pragmas+writeBusyTimeout+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)

	// The write connection is opened first so that it, not a reader, turns a
	// new file into WAL mode.
	if err := retryBusy(ctx, func() error { return wdb.PingContext(ctx) }); err != nil {
		wdb.Close()
		return nil, dbError(ctx, fmt.Errorf("sqlite: open %s: %w", path, err))
	}

	rdb, err := sql.Open("sqlite", file+"?"+pragmas+readBusyTimeout+"&_pragma=query_only(1)")
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	rdb.SetMaxOpenConns(readConns)
	rdb.SetMaxIdleConns(readConns)
	rdb.SetConnMaxLifetime(0)
	rdb.SetConnMaxIdleTime(0)

	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Store{wdb: wdb, rdb: rdb, now: now}, nil
}

// Migrate applies the embedded migrations that the database lacks. It runs
// on the write connection, so it waits for, and is not interleaved with,
// this process's writes.
func (s *Store) Migrate(ctx context.Context) error {
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectSQLite3, s.wdb, dir, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	// Each migration is a transaction, so an attempt that found another
	// process writing left nothing behind and can simply run again.
	err = retryBusy(ctx, func() error {
		_, err := p.Up(ctx)
		return err
	})
	if err != nil {
		return dbError(ctx, fmt.Errorf("sqlite: migrate: %w", err))
	}
	return nil
}

// begin starts a write transaction. BEGIN IMMEDIATE takes the database's
// write lock at once, so everything the transaction reads stays as read
// until it commits.
func (s *Store) begin(ctx context.Context) (*sql.Tx, error) {
	var tx *sql.Tx
	err := retryBusy(ctx, func() error {
		var err error
		tx, err = s.wdb.BeginTx(ctx, nil)
		return err
	})
	if err != nil {
		return nil, dbError(ctx, err)
	}
	return tx, nil
}

// commit commits tx and tells the caller what a failure means for the
// client.
//
// SQLite runs in this process, so a COMMIT has no reply to lose on a
// network; what can leave the outcome unknown is a COMMIT that began and
// failed in a way the store cannot see through:
//   - the context ended while COMMIT ran: the driver then interrupts the
//     connection and reports only the context's error, whether SQLite
//     stopped before committing or failed otherwise;
//   - an I/O error (or a full disk) while writing the WAL: frames that
//     reached the file can be replayed by the next recovery, so the
//     transaction may yet prove committed.
//
// These are EOutcomeUnknown: a retry with the same Visitor-Token and
// Idempotency-Key finds the reservation if it exists. Failures that leave
// nothing applied stay EUnavailable: the context ended before COMMIT (it is
// then not run; database/sql rolls back), database/sql had already rolled
// back, or SQLite reports it could not take the lock (BUSY, LOCKED) or was
// interrupted, after which it rolls the transaction back.
func (s *Store) commit(ctx context.Context, tx *sql.Tx) error {
	if err := ctx.Err(); err != nil {
		tx.Rollback()
		return ticketrush.Unavailable(err)
	}
	err := tx.Commit()
	if err == nil {
		return nil
	}
	if errors.Is(err, sql.ErrTxDone) {
		return ticketrush.Unavailable(err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_INTERRUPT:
			return ticketrush.Unavailable(err)
		}
	}
	return ticketrush.OutcomeUnknown(fmt.Errorf("sqlite: commit: %w", err))
}

// retryBusy calls f until it does not fail with SQLITE_BUSY, waiting about
// lockRetry between calls, for at most lockWait or until ctx ends.
func retryBusy(ctx context.Context, f func() error) error {
	var deadline time.Time
	for {
		err := f()
		if err == nil || !isBusy(err) {
			return err
		}
		now := time.Now()
		if deadline.IsZero() {
			deadline = now.Add(lockWait)
		} else if now.After(deadline) {
			return err
		}
		// The jitter keeps several waiting processes from polling in step.
		t := time.NewTimer(lockRetry/2 + rand.N(lockRetry))
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}

func isBusy(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_BUSY
}

// Ping reports whether the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.rdb.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return dbError(ctx, err)
	}
	return nil
}

// Close closes both pools. It is safe to call more than once.
func (s *Store) Close() error {
	s.closer.Do(func() {
		var errs []error
		if st := s.st.Load(); st != nil {
			errs = append(errs, st.close())
		}
		s.cerr = errors.Join(append(errs, s.rdb.Close(), s.wdb.Close())...)
	})
	return s.cerr
}

// clock returns the store's current time, in the precision stored.
func (s *Store) clock() time.Time {
	return s.now().UTC().Truncate(time.Microsecond)
}

// timeLayout is the stored form of every time: fixed width, UTC, so that
// string order is time order (see the migration).
const timeLayout = "2006-01-02T15:04:05.000000Z"

func formatTime(t time.Time) string {
	return t.UTC().Truncate(time.Microsecond).Format(timeLayout)
}

func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(timeLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("sqlite: bad stored time %q: %w", s, err)
	}
	return t, nil
}

// dbError turns a driver error into what the Store contract promises: a
// database that cannot answer in time (the context ended, another process
// holds the lock past busy_timeout, the file cannot be opened or read) is
// EUnavailable, so the client is told to retry; anything else stays a plain
// error, shown as internal. Domain errors pass through.
func dbError(ctx context.Context, err error) error {
	var de *ticketrush.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &de):
		return err
	case ctx.Err() != nil,
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, context.Canceled),
		errors.Is(err, sql.ErrConnDone):
		return ticketrush.Unavailable(err)
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_INTERRUPT,
			sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_IOERR:
			return ticketrush.Unavailable(err)
		}
	}
	return err
}
