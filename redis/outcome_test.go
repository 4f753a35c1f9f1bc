package redis_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/redis"
)

// relayStore opens a store whose connections go through a relay in front
// of the test Redis (query, when not "", is added to the URL), and a direct
// store on the same keys to look at what happened.
func relayStore(t *testing.T, query string) (s, direct *redis.Store, rl *relay, clock *fixedClock) {
	t.Helper()
	url := serverURL(t)
	o, err := goredis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	prefix := uniquePrefix()
	cleanupPrefix(t, url, prefix)
	rl = startRelay(t, o.Addr)
	clock = &fixedClock{now: time.Date(2025, 11, 18, 7, 54, 23, 123456000, time.UTC)}
	u := "redis://" + rl.addr() + "/" + strconv.Itoa(o.DB)
	if query != "" {
		u += "?" + query
	}
	s = open(t, u, prefix, clock.Now)
	t.Cleanup(func() { s.Close() })
	direct = open(t, url, prefix, clock.Now)
	t.Cleanup(func() { direct.Close() })
	if err := direct.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return s, direct, rl, clock
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := ticketrush.ErrorCode(err); got != code {
		t.Errorf("%s = %v, want %s", what, err, code)
	}
}

func held(t *testing.T, s *redis.Store, eventID int64) int64 {
	t.Helper()
	st, err := s.Stats(t.Context(), eventID)
	if err != nil {
		t.Fatal(err)
	}
	return st.Held
}

// TestLostReplyIsOutcomeUnknown: a script whose reply is lost after Redis
// ran it (the connection cut on the way back, or the deadline passing while
// the reply is held up) is outcome_unknown, and a retry with the same
// Visitor-Token and Idempotency-Key answers with the reservation it made.
func TestLostReplyIsOutcomeUnknown(t *testing.T) {
	s, direct, rl, _ := relayStore(t, "")
	ev, err := direct.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: 100, HoldSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	// Load the scripts through the relay first, so the lost reply is the
	// script's own, not a NOSCRIPT refusal.
	if _, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()}); err != nil {
		t.Fatal(err)
	}

	t.Run("ConnectionCut", func(t *testing.T) {
		r := ticketrush.ReserveRequest{EventID: ev.ID, Amount: 2, VisitorToken: uuid.NewString(), IdempotencyKey: "cut"}
		before := held(t, direct, ev.ID)
		rl.dropScriptReplies(1)
		_, err := s.Reserve(t.Context(), r)
		wantCode(t, "Reserve with its reply lost", err, ticketrush.EOutcomeUnknown)
		if h := held(t, direct, ev.ID); h != before+2 {
			t.Fatalf("held %d after the lost reply, want %d: the script ran", h, before+2)
		}
		res, err := s.Reserve(t.Context(), r)
		if err != nil || res.Amount != 2 {
			t.Fatalf("retry with the same key = %+v, %v; want the reservation", res, err)
		}
		if h := held(t, direct, ev.ID); h != before+2 {
			t.Errorf("held %d after the retry, want %d", h, before+2)
		}

		rl.dropScriptReplies(1)
		_, err = s.Purchase(t.Context(), res.ID, r.VisitorToken)
		wantCode(t, "Purchase with its reply lost", err, ticketrush.EOutcomeUnknown)
		if got, err := direct.Reservation(t.Context(), res.ID, r.VisitorToken); err != nil || got.Status != ticketrush.StatusPurchased {
			t.Errorf("after the lost purchase reply: %+v, %v; want purchased", got, err)
		}

		before = held(t, direct, ev.ID)
		rl.dropScriptReplies(1)
		_, err = s.ReserveBatch(t.Context(), ev.ID, []ticketrush.ReserveRequest{
			{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()},
			{EventID: ev.ID, Amount: 3, VisitorToken: uuid.NewString()},
		})
		wantCode(t, "ReserveBatch with its reply lost", err, ticketrush.EOutcomeUnknown)
		if h := held(t, direct, ev.ID); h != before+4 {
			t.Errorf("held %d after the lost batch reply, want %d", h, before+4)
		}
	})

	t.Run("DeadlineWaitingForReply", func(t *testing.T) {
		r := ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString(), IdempotencyKey: "late"}
		before := held(t, direct, ev.ID)
		// A connection set up before: the reserve is the first thing it
		// sends once replies stall.
		if err := s.Ping(t.Context()); err != nil {
			t.Fatal(err)
		}
		rl.stall()
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		_, err := s.Reserve(ctx, r)
		cancel()
		rl.unstall()
		wantCode(t, "Reserve past its deadline waiting for the reply", err, ticketrush.EOutcomeUnknown)
		if h := held(t, direct, ev.ID); h != before+1 {
			t.Fatalf("held %d, want %d: the script ran", h, before+1)
		}
		if res, err := s.Reserve(t.Context(), r); err != nil || res.Amount != 1 {
			t.Errorf("retry = %+v, %v", res, err)
		}
	})

	t.Run("StalledConnectionSetUp", func(t *testing.T) {
		// The connection cut leaves no pooled connection: a new one's
		// set-up (HELLO) stalls past the deadline, and the reserve is
		// never sent.
		rl.dropScriptReplies(1)
		s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()})
		before := held(t, direct, ev.ID)
		rl.stall()
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		_, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()})
		cancel()
		rl.unstall()
		wantCode(t, "Reserve whose connection set-up stalled", err, ticketrush.EUnavailable)
		if h := held(t, direct, ev.ID); h != before {
			t.Errorf("held %d, want %d: the reserve was never sent", h, before)
		}
	})

	t.Run("NothingSent", func(t *testing.T) {
		// A context already past its deadline: nothing goes out.
		before := held(t, direct, ev.ID)
		ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
		_, err := s.Reserve(ctx, ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()})
		cancel()
		wantCode(t, "Reserve with a dead context", err, ticketrush.EUnavailable)
		if h := held(t, direct, ev.ID); h != before {
			t.Errorf("held %d, want %d", h, before)
		}
	})
}

// TestPoolTimeoutIsUnavailable: a reserve that never got a connection
// (the pool's one connection busy past PoolTimeout) sent nothing, and says
// unavailable.
func TestPoolTimeoutIsUnavailable(t *testing.T) {
	s, direct, rl, _ := relayStore(t, "pool_size=1&pool_timeout=200ms")
	ev, err := direct.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: 100, HoldSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()}); err != nil {
		t.Fatal(err)
	}
	rl.stall()
	busy := make(chan error, 1)
	go func() {
		_, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()})
		busy <- err
	}()
	time.Sleep(100 * time.Millisecond) // the first reserve holds the connection
	_, err = s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 5, VisitorToken: uuid.NewString()})
	rl.unstall()
	wantCode(t, "Reserve that waited for the pool", err, ticketrush.EUnavailable)
	if err := <-busy; err != nil {
		t.Errorf("the reserve holding the connection: %v", err)
	}
	if h := held(t, direct, ev.ID); h != 2 {
		t.Errorf("held %d, want 2: the refused reserve must not have run", h)
	}
}

// TestDialFailureIsUnavailable: with Redis unreachable (the connection
// refused), a write sent nothing and says unavailable.
func TestDialFailureIsUnavailable(t *testing.T) {
	s, direct, rl, _ := relayStore(t, "")
	ev, err := direct.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "x", TicketQuantity: 100, HoldSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()})
	if err != nil {
		t.Fatal(err)
	}
	rl.down()
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"Reserve", func() error {
			_, err := s.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()})
			return err
		}},
		{"ReserveBatch", func() error {
			_, err := s.ReserveBatch(t.Context(), ev.ID, []ticketrush.ReserveRequest{{EventID: ev.ID, Amount: 1, VisitorToken: uuid.NewString()}})
			return err
		}},
		{"Purchase", func() error { _, err := s.Purchase(t.Context(), r.ID, r.UserUID); return err }},
		{"CreateEvent", func() error {
			_, err := s.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "y", TicketQuantity: 1, HoldSeconds: 60})
			return err
		}},
		{"JoinQueue", func() error {
			_, err := s.JoinQueue(t.Context(), ev.ID, []ticketrush.JoinRequest{{Visitor: uuid.NewString()}})
			return err
		}},
	} {
		wantCode(t, tc.name+" with Redis unreachable", tc.call(), ticketrush.EUnavailable)
	}
	if h := held(t, direct, ev.ID); h != 1 {
		t.Errorf("held %d, want 1", h)
	}
}
