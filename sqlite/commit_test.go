package sqlite

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/ticketrush/ticketrush"
	msqlite "modernc.org/sqlite"
)

// onCommit runs hook inside every COMMIT of s's write connection, after
// SQLite has begun to commit and before the transaction is durable. A hook
// that returns true makes SQLite roll the transaction back instead.
func onCommit(t *testing.T, s *Store, hook func() bool) {
	t.Helper()
	conn, err := s.wdb.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	err = conn.Raw(func(dc any) error {
		dc.(msqlite.HookRegisterer).RegisterCommitHook(func() int32 {
			if hook() {
				return 1
			}
			return 0
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestCommitOutcome checks how a failure around COMMIT is told to the
// client: before COMMIT runs, EUnavailable (nothing was applied); once it
// runs, a failure the store cannot see through is EOutcomeUnknown (the
// client retries with the same Idempotency-Key to learn the outcome), and a
// COMMIT that completes is a success even if the context ended meanwhile.
func TestCommitOutcome(t *testing.T) {
	path, c := newDB(t)
	s := open(t, path, c)
	ev := createEvent(t, s, concert(10))
	// A connection whose COMMIT was interrupted is replaced by a new one,
	// so the hook is set on the write connection before each call.
	var hook func() bool
	setHook := func(h func() bool) {
		hook = h
		onCommit(t, s, func() bool {
			if hook == nil {
				return false
			}
			return hook()
		})
	}
	// cancelDuring cancels the request's context from inside COMMIT and
	// waits until the driver has seen it and interrupted the connection.
	cancelDuring := func(cancel context.CancelFunc, fail bool) func() bool {
		return func() bool {
			cancel()
			time.Sleep(50 * time.Millisecond)
			return fail
		}
	}
	held := func() int64 {
		t.Helper()
		return checkInvariant(t, s, ev.ID).Held
	}

	t.Run("FailsWhileCommitting", func(t *testing.T) {
		for _, batch := range []bool{false, true} {
			ctx, cancel := context.WithCancel(t.Context())
			setHook(cancelDuring(cancel, true))
			rq := ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString(), IdempotencyKey: "k"}
			var err error
			if batch {
				_, err = s.ReserveBatch(ctx, ev.ID, []ticketrush.ReserveRequest{rq})
			} else {
				_, err = s.Reserve(ctx, rq)
			}
			hook = nil
			if code := ticketrush.ErrorCode(err); code != ticketrush.EOutcomeUnknown {
				t.Errorf("batch %v: cancelled while COMMIT ran: %v (code %q), want %q", batch, err, code, ticketrush.EOutcomeUnknown)
			}
			// The retry with the same key tells the outcome: here the
			// hook rolled the transaction back, so it reserves now.
			if _, err := s.Reserve(t.Context(), rq); err != nil {
				t.Fatal(err)
			}
		}
		if h := held(); h != 2 {
			t.Errorf("held %d, want 2", h)
		}
	})

	t.Run("CompletesWhileCancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		setHook(cancelDuring(cancel, false))
		before := held()
		res, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()})
		hook = nil
		if err != nil || res == nil {
			t.Fatalf("a COMMIT that completed: %v", err)
		}
		if h := held(); h != before+1 {
			t.Errorf("held %d, want %d", h, before+1)
		}
	})

	t.Run("FailsBeforeCommit", func(t *testing.T) {
		// The context ends after the transaction's statements and before
		// COMMIT: nothing is applied, and the client is told so.
		ctx, cancel := context.WithCancel(t.Context())
		conn, err := s.wdb.Conn(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		err = conn.Raw(func(dc any) error {
			dc.(msqlite.HookRegisterer).RegisterPreUpdateHook(func(msqlite.SQLitePreUpdateData) { cancel() })
			return nil
		})
		conn.Close()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			conn, err := s.wdb.Conn(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.Raw(func(dc any) error {
				dc.(msqlite.HookRegisterer).RegisterPreUpdateHook(nil)
				return nil
			})
		})
		committed := false
		setHook(func() bool { committed = true; return false })
		before := held()
		_, err = s.Reserve(ctx, ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()})
		hook = nil
		if code := ticketrush.ErrorCode(err); code != ticketrush.EUnavailable || committed {
			t.Errorf("cancelled before COMMIT: %v (code %q, COMMIT ran: %v), want %q", err, code, committed, ticketrush.EUnavailable)
		}
		if h := held(); h != before {
			t.Errorf("held %d, want %d", h, before)
		}
	})
}
