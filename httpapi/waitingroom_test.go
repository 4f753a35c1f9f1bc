package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/storetest"
)

// roomEnv is an env whose server shares the store's clock and whose queue
// figures are read fresh (the cache has its own test), so a test that
// advances the queue through the store sees it at once.
func forEachRoomBackend(t *testing.T, f func(t *testing.T, e *env)) {
	forEachRoomBackendWith(t, func(c *WaitingRoomConfig) { c.CacheTTL = -1 }, f)
}

func forEachRoomBackendWith(t *testing.T, mod func(*WaitingRoomConfig), f func(t *testing.T, e *env)) {
	for _, b := range backends {
		for _, st := range strategies {
			t.Run(b.name+"/"+st.name, func(t *testing.T) {
				t.Parallel()
				clock := storetest.NewClock(start)
				s := b.open(t, clock.Now)
				f(t, newRoomEnv(t, clock, s, st.reserver(t, s), mod))
			})
		}
	}
}

func newRoomEnv(t *testing.T, clock *storetest.Clock, s ticketrush.Store, r ticketrush.Reserver, mod func(*WaitingRoomConfig)) *env {
	log := &syncBuffer{}
	wr := WaitingRoomConfig{PassKeys: []PassKey{testKey1}, Now: clock.Now}
	if mod != nil {
		mod(&wr)
	}
	srv := New(Config{
		Store:       s,
		Reserver:    r,
		AdminToken:  adminToken,
		Logger:      slog.New(slog.NewTextHandler(log, nil)),
		Registry:    prometheus.NewRegistry(),
		Timeout:     time.Minute,
		WaitingRoom: wr,
	})
	t.Cleanup(srv.Close)
	return &env{clock: clock, store: s, srv: srv, log: log}
}

func (e *env) queues(t testing.TB) ticketrush.Queues {
	q, ok := e.store.(ticketrush.Queues)
	if !ok {
		t.Fatalf("%T does not implement ticketrush.Queues", e.store)
	}
	return q
}

// advance runs the queue's steps as the keeper of any node would: again
// at once while a step says there is more. It returns the sums.
func (e *env) advance(t testing.TB, eventID int64) *ticketrush.QueueAdvance {
	t.Helper()
	var sum ticketrush.QueueAdvance
	for range 100 {
		a, err := e.queues(t).AdvanceQueue(context.Background(), eventID)
		if err != nil {
			t.Fatal(err)
		}
		sum.Shuffled += a.Shuffled
		sum.Admitted += a.Admitted
		sum.Expired += a.Expired
		if !a.More {
			return &sum
		}
	}
	t.Fatal("the queue keeps saying there is more")
	return nil
}

func (e *env) join(t testing.TB, eventID int64, token, body string, status int) (QueueStatus, response) {
	t.Helper()
	h := map[string]string{}
	if token != "" {
		h["Visitor-Token"] = token
	}
	res := e.must(t, request{method: "POST", path: fmt.Sprintf("/api/events/%d/queue", eventID), headers: h, body: body}, status)
	if status >= 400 {
		return QueueStatus{}, res
	}
	return checkQueueAnswer(t, res), res
}

func (e *env) poll(t testing.TB, eventID int64, token string) QueueStatus {
	t.Helper()
	res := e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d/queue", eventID), headers: visitor(token)}, http.StatusOK)
	return checkQueueAnswer(t, res)
}

// checkQueueAnswer decodes a queue answer and checks what the contract
// promises beyond the schema: every field present, a Retry-After.
func checkQueueAnswer(t testing.TB, res response) QueueStatus {
	t.Helper()
	var raw struct {
		Data map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(res.body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"event_id", "state", "position", "ahead", "estimated_wait_seconds", "pass", "pass_expires_at"} {
		if _, ok := raw.Data[f]; !ok {
			t.Errorf("queue answer lacks %q: %s", f, res.body)
		}
	}
	if ra, err := strconv.Atoi(res.header.Get("Retry-After")); err != nil || ra < 1 {
		t.Errorf("Retry-After %q", res.header.Get("Retry-After"))
	}
	if res.header.Get("Visitor-Token") == "" {
		t.Error("no Visitor-Token header")
	}
	return decode[QueueStatus](t, res)
}

func (e *env) reserveWithPass(t testing.TB, eventID int64, amount int, token, pass, key string, status int) response {
	t.Helper()
	h := map[string]string{"Visitor-Token": token}
	if pass != "" {
		h["Admission-Pass"] = pass
	}
	if key != "" {
		h["Idempotency-Key"] = key
	}
	res := e.must(t, request{method: "POST", path: "/api/reserve", headers: h,
		body: fmt.Sprintf(`{"event_id":%d,"amount":%d}`, eventID, amount)}, status)
	return res
}

func wantCode(t testing.TB, res response, code string) {
	t.Helper()
	if got := errorOf(t, res).Code; got != code {
		t.Errorf("code %q, want %q", got, code)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestWaitingRoomFlow: join, poll, admission, reserve with the pass, the
// pass used once, a retry under the same Idempotency-Key, purchase without
// a pass, a pass that runs out, and joining again at the back.
func TestWaitingRoomFlow(t *testing.T) {
	forEachRoomBackend(t, func(t *testing.T, e *env) {
		ev := e.createEvent(t, `{"name":"Room","ticket_quantity":10,"waiting_room":{"admit_per_minute":1}}`)
		w := ev.WaitingRoom
		if w == nil || w.AdmitPerMinute != 1 || w.MaxActive != 0 || w.PassSeconds != 300 || w.PrequeueOpensAt != nil || w.ChallengeBits != 0 || w.Paused {
			t.Fatalf("waiting_room = %+v", w)
		}
		if ev.MaxPerOrder != 10 || ev.SaleClosed || ev.Hidden == nil || *ev.Hidden {
			t.Errorf("settings: max_per_order %d sale_closed %v hidden %v", ev.MaxPerOrder, ev.SaleClosed, deref(ev.Hidden))
		}
		other := e.createEvent(t, `{"name":"Other room","ticket_quantity":10,"waiting_room":{"admit_per_minute":100}}`)

		wantCode(t, e.reserveWithPass(t, ev.ID, 1, tokenA, "", "", http.StatusForbidden), ticketrush.EAdmissionRequired)
		wantCode(t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d/queue", ev.ID), headers: visitor(tokenA)}, http.StatusNotFound), ticketrush.ENotInQueue)

		a, _ := e.join(t, ev.ID, tokenA, "", http.StatusCreated)
		if a.State != "waiting" || deref(a.Position) != int64(1) || deref(a.Ahead) != int64(0) || a.Pass != nil || a.PassExpiresAt != nil || a.EstimatedWaitSeconds == nil {
			t.Fatalf("first join = %+v", a)
		}
		again, _ := e.join(t, ev.ID, strings.ToUpper(tokenA), "", http.StatusOK)
		if deref(again.Position) != int64(1) || again.State != "waiting" {
			t.Errorf("repeat join = %+v", again)
		}
		b, _ := e.join(t, ev.ID, tokenB, `{}`, http.StatusCreated)
		if deref(b.Position) != int64(2) || deref(b.Ahead) != int64(1) {
			t.Errorf("second visitor = %+v", b)
		}
		// A join without a token gets one, as reserve does.
		_, res := e.join(t, ev.ID, "", "", http.StatusCreated)
		if _, err := ticketrush.ParseVisitorToken(res.header.Get("Visitor-Token")); err != nil {
			t.Errorf("new visitor's token %q: %v", res.header.Get("Visitor-Token"), err)
		}

		if adv := e.advance(t, ev.ID); adv.Admitted != 1 {
			t.Fatalf("advance = %+v, want one admitted", adv)
		}
		a = e.poll(t, ev.ID, tokenA)
		if a.State != "admitted" || a.Pass == nil || a.PassExpiresAt == nil || !a.PassExpiresAt.Equal(e.clock.Now().Add(300*time.Second)) {
			t.Fatalf("admitted poll = %+v", a)
		}
		if b = e.poll(t, ev.ID, tokenB); b.State != "waiting" || deref(b.Ahead) != int64(0) {
			t.Errorf("B after A's admission = %+v", b)
		}
		pass := *a.Pass

		// Another visitor, another event: refused without touching stock.
		wantCode(t, e.reserveWithPass(t, ev.ID, 1, tokenB, pass, "", http.StatusForbidden), ticketrush.EAdmissionInvalid)
		wantCode(t, e.reserveWithPass(t, other.ID, 1, tokenA, pass, "", http.StatusForbidden), ticketrush.EAdmissionInvalid)
		wantCode(t, e.reserveWithPass(t, ev.ID, 1, tokenA, pass[:len(pass)-3]+"AAA", "", http.StatusForbidden), ticketrush.EAdmissionInvalid)
		// Over max_per_order: refused, and the pass is still unused.
		wantCode(t, e.reserveWithPass(t, ev.ID, 11, tokenA, pass, "", http.StatusConflict), ticketrush.EOrderLimit)

		first := decode[Reservation](t, e.reserveWithPass(t, ev.ID, 2, tokenA, pass, "buy-1", http.StatusCreated))
		// Used: a second reserve is refused, a retry of the first answers.
		wantCode(t, e.reserveWithPass(t, ev.ID, 1, tokenA, pass, "buy-2", http.StatusForbidden), ticketrush.EAdmissionInvalid)
		wantCode(t, e.reserveWithPass(t, ev.ID, 1, tokenA, pass, "", http.StatusForbidden), ticketrush.EAdmissionInvalid)
		retry := decode[Reservation](t, e.reserveWithPass(t, ev.ID, 2, tokenA, pass, "buy-1", http.StatusCreated))
		if retry.ID != first.ID {
			t.Errorf("retry got reservation %d, want %d", retry.ID, first.ID)
		}
		st, _ := e.store.Stats(context.Background(), ev.ID)
		if st.Held != 2 {
			t.Errorf("held %d, want 2", st.Held)
		}
		// Purchase needs only the holder's token.
		e.must(t, request{method: "POST", path: "/api/purchase", headers: visitor(tokenA),
			body: fmt.Sprintf(`{"reservation_id":%d}`, first.ID)}, http.StatusOK)
		if a = e.poll(t, ev.ID, tokenA); a.State != "admitted" {
			t.Errorf("after purchase = %+v", a)
		}

		// B is admitted a minute later; its pass runs out unused.
		e.clock.Advance(time.Minute)
		if adv := e.advance(t, ev.ID); adv.Admitted != 1 {
			t.Fatalf("advance = %+v", adv)
		}
		b = e.poll(t, ev.ID, tokenB)
		if b.State != "admitted" || b.Pass == nil {
			t.Fatalf("B = %+v", b)
		}
		e.clock.Advance(301 * time.Second)
		wantCode(t, e.reserveWithPass(t, ev.ID, 1, tokenB, *b.Pass, "", http.StatusForbidden), ticketrush.EAdmissionExpired)
		if b = e.poll(t, ev.ID, tokenB); b.State != "expired" || b.Pass != nil || b.Position != nil {
			t.Errorf("B after the pass ran out = %+v", b)
		}
		b, _ = e.join(t, ev.ID, tokenB, "", http.StatusCreated)
		if b.State != "waiting" || deref(b.Position) != int64(4) {
			t.Errorf("B joining again = %+v, want waiting at 4", b)
		}
		checkInvariant(t, e)
		if _, mac, _ := strings.Cut(pass[3:], "."); strings.Contains(e.log.String(), mac) {
			t.Error("a pass reached the log")
		}
	})
}

// TestAdmissionPassAcrossNodes: passes verify on any node with the keys,
// and a key rotates without cutting anyone off. Two servers with their own
// key lists share one store, as two nodes share a database.
func TestAdmissionPassAcrossNodes(t *testing.T) {
	forEachRoomBackend(t, func(t *testing.T, e *env) {
		// Node A is mid-rotation: it signs with k1 and knows k2. Node B
		// has moved on: it signs with k2 and still knows k1. Node O is an
		// old node that knows only k1.
		a := e
		b := newRoomEnv(t, e.clock, e.store, e.srv.reserver, func(c *WaitingRoomConfig) {
			c.CacheTTL = -1
			c.PassKeys = []PassKey{testKey2, testKey1}
		})
		a.srv = newRoomEnv(t, e.clock, e.store, e.srv.reserver, func(c *WaitingRoomConfig) {
			c.CacheTTL = -1
			c.PassKeys = []PassKey{testKey1, testKey2}
		}).srv
		old := newRoomEnv(t, e.clock, e.store, e.srv.reserver, nil)
		ev := a.createEvent(t, `{"name":"Rotating","ticket_quantity":10,"waiting_room":{"admit_per_minute":100}}`)
		a.join(t, ev.ID, tokenA, "", http.StatusCreated)
		b.join(t, ev.ID, tokenB, "", http.StatusCreated)
		a.advance(t, ev.ID)

		passA := *a.poll(t, ev.ID, tokenA).Pass // signed with k1
		passB := *b.poll(t, ev.ID, tokenB).Pass // signed with k2
		if !strings.HasPrefix(passA, "k1.") || !strings.HasPrefix(passB, "k2.") {
			t.Fatalf("passes %q, %q", passA[:3], passB[:3])
		}
		// The old node never saw k2: it refuses B's pass, which is why a
		// key is added everywhere before any node signs with it.
		wantCode(t, old.reserveWithPass(t, ev.ID, 1, tokenB, passB, "", http.StatusForbidden), ticketrush.EAdmissionInvalid)
		b.reserveWithPass(t, ev.ID, 1, tokenA, passA, "", http.StatusCreated)
		a.reserveWithPass(t, ev.ID, 1, tokenB, passB, "", http.StatusCreated)
	})
}

// TestJoinChallenge: the proof of work is required, bound to its event
// and visitor, expires, and works for one entry.
func TestJoinChallenge(t *testing.T) {
	forEachRoomBackend(t, func(t *testing.T, e *env) {
		ev := e.createEvent(t, `{"name":"Hard","ticket_quantity":10,"waiting_room":{"admit_per_minute":100,"challenge_bits":6,"pass_seconds":60}}`)
		plain := e.createEvent(t, `{"name":"No room","ticket_quantity":10}`)
		wantCode(t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d/queue/challenge", plain.ID)}, http.StatusNotFound), ticketrush.EWaitingRoomNotFound)
		wantCode(t, e.must(t, request{method: "POST", path: fmt.Sprintf("/api/events/%d/queue", plain.ID), headers: visitor(tokenA)}, http.StatusNotFound), ticketrush.EWaitingRoomNotFound)

		res := e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d/queue/challenge", ev.ID)}, http.StatusOK)
		token := res.header.Get("Visitor-Token")
		ch := decode[Challenge](t, res)
		if ch.Bits != 6 || !ch.ExpiresAt.After(e.clock.Now()) {
			t.Fatalf("challenge = %+v", ch)
		}
		nonce := solveChallenge(ch.Challenge, token, 6)
		body := func(c, n string) string { return fmt.Sprintf(`{"challenge":%q,"nonce":%q}`, c, n) }
		wrong := "x"
		for leadingZeroBits(solutionHash(ch.Challenge, token, wrong)) >= 6 {
			wrong += "x"
		}

		wantCode(t, e.must(t, request{method: "POST", path: fmt.Sprintf("/api/events/%d/queue", ev.ID), headers: visitor(token)}, 422), ticketrush.EChallengeFailed)
		_, r := e.join(t, ev.ID, token, body(ch.Challenge, wrong), 422)
		wantCode(t, r, ticketrush.EChallengeFailed)
		_, r = e.join(t, ev.ID, tokenB, body(ch.Challenge, nonce), 422) // another visitor's
		wantCode(t, r, ticketrush.EChallengeFailed)
		_, r = e.join(t, ev.ID, token, `{"challenge":"x","nonce":"1","extra":1}`, 422)
		if f := errorOf(t, r).Fields; f["extra"] == "" {
			t.Errorf("unknown member not named: %v", f)
		}
		if _, err := e.queues(t).QueueEntry(context.Background(), ev.ID, token); ticketrush.ErrorCode(err) != ticketrush.ENotInQueue {
			t.Fatalf("a refused join made an entry: %v", err)
		}

		first, _ := e.join(t, ev.ID, token, body(ch.Challenge, nonce), http.StatusCreated)
		// A lost answer retried with the same proof keeps the place.
		if again, _ := e.join(t, ev.ID, token, body(ch.Challenge, nonce), http.StatusOK); deref(again.Position) != deref(first.Position) {
			t.Errorf("retry = %+v, first %+v", again, first)
		}
		// Admitted, the pass runs out: the old challenge cannot make the
		// new entry, a new one can.
		e.advance(t, ev.ID)
		e.clock.Advance(61 * time.Second)
		if s := e.poll(t, ev.ID, token); s.State != "expired" {
			t.Fatalf("after the pass = %+v", s)
		}
		_, r = e.join(t, ev.ID, token, body(ch.Challenge, nonce), 422)
		wantCode(t, r, ticketrush.EChallengeFailed)
		ch2 := decode[Challenge](t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d/queue/challenge", ev.ID), headers: visitor(token)}, http.StatusOK))
		n2 := solveChallenge(ch2.Challenge, token, 6)
		// Past its expiry a challenge is refused.
		e.clock.Advance(ChallengeTTL)
		_, r = e.join(t, ev.ID, token, body(ch2.Challenge, n2), 422)
		wantCode(t, r, ticketrush.EChallengeFailed)
		ch3 := decode[Challenge](t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d/queue/challenge", ev.ID), headers: visitor(token)}, http.StatusOK))
		if again, _ := e.join(t, ev.ID, token, body(ch3.Challenge, solveChallenge(ch3.Challenge, token, 6)), http.StatusCreated); again.State != "waiting" || deref(again.Position) != int64(2) {
			t.Errorf("new entry = %+v", again)
		}
	})
}

// TestEventPatch: merge-patch semantics of PATCH /api/admin/events/{id}.
func TestEventPatch(t *testing.T) {
	forEachRoomBackend(t, func(t *testing.T, e *env) {
		ev := e.createEvent(t, `{"name":"Plain","ticket_quantity":10}`)
		path := fmt.Sprintf("/api/admin/events/%d", ev.ID)
		patch := func(body string, status int, ct ...string) response {
			t.Helper()
			h := admin()
			h["Content-Type"] = "application/merge-patch+json"
			if len(ct) > 0 {
				h["Content-Type"] = ct[0]
			}
			return e.must(t, request{method: "PATCH", path: path, headers: h, body: body}, status)
		}
		if ev.WaitingRoom != nil {
			t.Fatalf("new event has a room: %+v", ev.WaitingRoom)
		}
		before := e.snapshot(t)
		r := patch(`{"waiting_room":{"max_active":5}}`, 422)
		if f := errorOf(t, r).Fields; f["waiting_room.admit_per_minute"] != "is required" {
			t.Errorf("fields = %v", f)
		}
		r = patch(`{"nmae":"x","waiting_room":{"admit_per_minute":0,"admit_per_min":5},"ticket_quantity":5,"hidden":"yes","name":null}`, 422)
		f := errorOf(t, r).Fields
		for _, name := range []string{"nmae", "waiting_room.admit_per_minute", "waiting_room.admit_per_min", "ticket_quantity", "hidden", "name"} {
			if f[name] == "" {
				t.Errorf("field %s not named: %v", name, f)
			}
		}
		patch(`{"name":"x"}`, 415, "text/plain")
		patch(`{"name":`, 400)
		if after := e.snapshot(t); after != before {
			t.Errorf("refused patches changed state:\n%s\n%s", before, after)
		}

		got := decode[Event](t, patch(`{"waiting_room":{"admit_per_minute":100,"prequeue_opens_at":"2030-01-01T10:00:00+02:00"}}`, 200))
		w := got.WaitingRoom
		if w == nil || w.AdmitPerMinute != 100 || w.PassSeconds != 300 || w.MaxActive != 0 || w.ChallengeBits != 0 || w.Paused ||
			w.PrequeueOpensAt == nil || !w.PrequeueOpensAt.Equal(time.Date(2030, 1, 1, 8, 0, 0, 0, time.UTC)) {
			t.Fatalf("room set = %+v", w)
		}
		got = decode[Event](t, patch(`{"waiting_room":{"paused":true,"challenge_bits":3}}`, 200, "application/json"))
		if w := got.WaitingRoom; w.AdmitPerMinute != 100 || !w.Paused || w.ChallengeBits != 3 || w.PrequeueOpensAt == nil {
			t.Errorf("partial patch = %+v", w)
		}
		got = decode[Event](t, patch(`{"waiting_room":{"challenge_bits":null,"prequeue_opens_at":null,"pass_seconds":60}}`, 200))
		if w := got.WaitingRoom; w.ChallengeBits != 0 || w.PrequeueOpensAt != nil || w.PassSeconds != 60 || !w.Paused || w.AdmitPerMinute != 100 {
			t.Errorf("nulls = %+v", w)
		}
		read := decode[Event](t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d", ev.ID)}, 200))
		if read.WaitingRoom == nil || *read.WaitingRoom != *got.WaitingRoom || read.Hidden != nil {
			t.Errorf("public read = %+v (room %+v)", read, read.WaitingRoom)
		}
		got = decode[Event](t, patch(`{"name":"  Renamed ","hidden":true,"sale_closed":true,"max_per_order":3}`, 200))
		if got.Name != "Renamed" || !*got.Hidden || !got.SaleClosed || got.MaxPerOrder != 3 || got.WaitingRoom == nil {
			t.Errorf("flags = %+v", got)
		}
		got = decode[Event](t, patch(`{"waiting_room":null,"max_per_order":null}`, 200))
		if got.WaitingRoom != nil || got.MaxPerOrder != 10 || got.Name != "Renamed" || !got.SaleClosed {
			t.Errorf("room removed = %+v", got)
		}
		wantCode(t, e.reserveWithPass(t, ev.ID, 1, tokenA, "", "", http.StatusConflict), ticketrush.ESaleClosed)
		// null removes a flag: back to its default.
		got = decode[Event](t, patch(`{"sale_closed":null,"hidden":null}`, 200))
		if got.SaleClosed || *got.Hidden {
			t.Errorf("flags removed = %+v", got)
		}
		e.reserveWithPass(t, ev.ID, 1, tokenA, "", "", http.StatusCreated)
		wantCode(t, e.must(t, request{method: "PATCH", path: "/api/admin/events/999999", headers: admin(), body: `{"hidden":true}`}, 404), ticketrush.EEventNotFound)
		e.must(t, request{method: "PATCH", path: path, body: `{"hidden":true}`}, 401)
	})
}

// TestHiddenAndDelete: hidden events leave the public list only; DELETE
// removes an event without reservations.
func TestHiddenAndDelete(t *testing.T) {
	forEachRoomBackend(t, func(t *testing.T, e *env) {
		shown := e.createEvent(t, `{"name":"Shown","ticket_quantity":5}`)
		hidden := e.createEvent(t, `{"name":"Rehearsal","ticket_quantity":5,"hidden":true,"max_per_order":2}`)
		if hidden.Hidden == nil || !*hidden.Hidden || hidden.MaxPerOrder != 2 {
			t.Fatalf("created %+v", hidden)
		}
		list := decode[[]Event](t, e.must(t, request{method: "GET", path: "/api/events"}, 200))
		if len(list) != 1 || list[0].ID != shown.ID || list[0].Hidden != nil {
			t.Errorf("public list = %+v", list)
		}
		e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d", hidden.ID)}, 200)
		all := decode[[]Event](t, e.must(t, request{method: "GET", path: "/api/admin/events", headers: admin()}, 200))
		if len(all) != 2 || all[0].ID != hidden.ID || !*all[0].Hidden || *all[1].Hidden {
			t.Errorf("admin list = %+v", all)
		}
		one := decode[Event](t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/admin/events/%d", hidden.ID), headers: admin()}, 200))
		if one.Hidden == nil || !*one.Hidden {
			t.Errorf("admin read = %+v", one)
		}
		wantCode(t, e.reserveWithPass(t, hidden.ID, 3, tokenA, "", "", http.StatusConflict), ticketrush.EOrderLimit)

		e.reserve(t, shown.ID, 1, tokenA)
		wantCode(t, e.must(t, request{method: "DELETE", path: fmt.Sprintf("/api/admin/events/%d", shown.ID), headers: admin()}, 409), ticketrush.EEventHasReservations)
		r := e.must(t, request{method: "DELETE", path: fmt.Sprintf("/api/admin/events/%d", hidden.ID), headers: admin()}, 204)
		if len(r.body) != 0 {
			t.Errorf("204 with a body: %q", r.body)
		}
		wantCode(t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/events/%d", hidden.ID)}, 404), ticketrush.EEventNotFound)
		wantCode(t, e.must(t, request{method: "DELETE", path: fmt.Sprintf("/api/admin/events/%d", hidden.ID), headers: admin()}, 404), ticketrush.EEventNotFound)
		e.must(t, request{method: "DELETE", path: fmt.Sprintf("/api/admin/events/%d", shown.ID)}, 401)
	})
}

// TestQueueStates: paused, sold out, queue not open, and the admin
// figures.
func TestQueueStates(t *testing.T) {
	forEachRoomBackend(t, func(t *testing.T, e *env) {
		sale := e.clock.Now().Add(time.Hour)
		opens := e.clock.Now().Add(30 * time.Minute)
		ev := e.createEvent(t, fmt.Sprintf(`{"name":"Later","ticket_quantity":1,"sale_starts_at":%q,"waiting_room":{"admit_per_minute":10,"prequeue_opens_at":%q}}`,
			sale.Format(time.RFC3339Nano), opens.Format(time.RFC3339Nano)))
		_, r := e.join(t, ev.ID, tokenA, "", http.StatusConflict)
		wantCode(t, r, ticketrush.EQueueNotOpen)
		e.clock.Set(opens)
		p, _ := e.join(t, ev.ID, tokenA, "", http.StatusCreated)
		if p.State != "prequeue" || p.Position != nil || p.Ahead != nil {
			t.Errorf("pre-queue join = %+v", p)
		}
		e.clock.Set(sale)
		e.advance(t, ev.ID)
		e.join(t, ev.ID, tokenB, "", http.StatusCreated)
		stats := decode[Stats](t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/admin/events/%d/stats", ev.ID), headers: admin()}, 200))
		if q := stats.Queue; q == nil || q.Admitted != 1 || q.Serving != 1 || q.Tail != 2 || !q.Shuffled {
			t.Errorf("queue figures = %+v", stats.Queue)
		}
		plain := e.createEvent(t, `{"name":"Plain","ticket_quantity":1}`)
		if st := decode[Stats](t, e.must(t, request{method: "GET", path: fmt.Sprintf("/api/admin/events/%d/stats", plain.ID), headers: admin()}, 200)); st.Queue != nil {
			t.Errorf("figures without a room: %+v", st.Queue)
		}

		e.must(t, request{method: "PATCH", path: fmt.Sprintf("/api/admin/events/%d", ev.ID), headers: admin(), body: `{"waiting_room":{"paused":true}}`}, 200)
		if s := e.poll(t, ev.ID, tokenB); s.State != "paused" || deref(s.Position) != int64(2) {
			t.Errorf("paused = %+v", s)
		}
		if a := e.advance(t, ev.ID); a.Admitted != 0 {
			t.Errorf("admitted %d while paused", a.Admitted)
		}
		e.must(t, request{method: "PATCH", path: fmt.Sprintf("/api/admin/events/%d", ev.ID), headers: admin(), body: `{"waiting_room":{"paused":false}}`}, 200)
		a := e.poll(t, ev.ID, tokenA)
		if a.Pass == nil {
			t.Fatalf("A = %+v, want admitted", a)
		}
		res := decode[Reservation](t, e.reserveWithPass(t, ev.ID, 1, tokenA, *a.Pass, "", http.StatusCreated))
		e.must(t, request{method: "POST", path: "/api/purchase", headers: visitor(tokenA), body: fmt.Sprintf(`{"reservation_id":%d}`, res.ID)}, 200)
		if s := e.poll(t, ev.ID, tokenB); s.State != "sold_out" || s.Position != nil {
			t.Errorf("sold out = %+v", s)
		}
	})
}

// TestPollCache: a waiting visitor behind the serving counter is answered
// from the node's memory; an admitted one is read.
func TestPollCache(t *testing.T) {
	forEachRoomBackendWith(t, nil, func(t *testing.T, e *env) {
		ev := e.createEvent(t, `{"name":"Cached","ticket_quantity":10,"waiting_room":{"admit_per_minute":1}}`)
		e.join(t, ev.ID, tokenA, "", http.StatusCreated)
		e.join(t, ev.ID, tokenB, "", http.StatusCreated)
		e.advance(t, ev.ID)
		e.srv.QueueAdvanced(ev.ID, &ticketrush.QueueAdvance{Admitted: 1}) // as the keeper reports
		hits := e.srv.wr.metrics.cacheHits.WithLabelValues("hit")
		misses := e.srv.wr.metrics.cacheHits.WithLabelValues("miss")
		h0, m0 := testutil.ToFloat64(hits), testutil.ToFloat64(misses)
		for range 3 {
			if s := e.poll(t, ev.ID, tokenB); s.State != "waiting" || deref(s.Position) != int64(2) {
				t.Fatalf("B = %+v", s)
			}
		}
		if h, m := testutil.ToFloat64(hits)-h0, testutil.ToFloat64(misses)-m0; h != 3 || m != 0 {
			t.Errorf("waiting polls: %v hits, %v misses; want 3, 0", h, m)
		}
		if s := e.poll(t, ev.ID, tokenA); s.State != "admitted" {
			t.Errorf("A = %+v", s)
		}
		if m := testutil.ToFloat64(misses) - m0; m != 1 {
			t.Errorf("admitted poll: %v misses, want 1", m)
		}
	})
}

// TestRetryAfterPassExpiry: a reserve that succeeded is answered again on
// a retry with its Idempotency-Key even after the pass has run out.
func TestRetryAfterPassExpiry(t *testing.T) {
	forEachRoomBackend(t, func(t *testing.T, e *env) {
		ev := e.createEvent(t, `{"name":"Retry","ticket_quantity":10,"waiting_room":{"admit_per_minute":10,"pass_seconds":60}}`)
		e.join(t, ev.ID, tokenA, "", http.StatusCreated)
		e.advance(t, ev.ID)
		pass := *e.poll(t, ev.ID, tokenA).Pass
		first := decode[Reservation](t, e.reserveWithPass(t, ev.ID, 1, tokenA, pass, "order-1", http.StatusCreated))
		e.clock.Advance(61 * time.Second)
		again := decode[Reservation](t, e.reserveWithPass(t, ev.ID, 1, tokenA, pass, "order-1", http.StatusCreated))
		if again.ID != first.ID {
			t.Errorf("retry got %d, want %d", again.ID, first.ID)
		}
		wantCode(t, e.reserveWithPass(t, ev.ID, 1, tokenA, pass, "", http.StatusForbidden), ticketrush.EAdmissionExpired)
		wantCode(t, e.reserveWithPass(t, ev.ID, 1, tokenA, pass, "order-2", http.StatusForbidden), ticketrush.EAdmissionInvalid)
		// A pass sent to an event without a waiting room is ignored.
		plain := e.createEvent(t, `{"name":"Plain","ticket_quantity":10}`)
		e.reserveWithPass(t, plain.ID, 1, tokenA, pass, "", http.StatusCreated)
	})
}

// captcha is an external join check, as a deployment would add one.
type captcha struct{}

func (captcha) VerifyJoin(_ context.Context, j JoinAttempt) (string, error) {
	r := j.Request.Header.Get("Captcha-Response")
	if !strings.HasPrefix(r, "human") {
		return "", ticketrush.Errorf(ticketrush.EChallengeFailed, "Solve the captcha first.")
	}
	return "captcha:" + r, nil // a fresh response each time, as real ones are
}

func TestJoinVerifier(t *testing.T) {
	forEachRoomBackendWith(t, func(c *WaitingRoomConfig) {
		c.CacheTTL = -1
		c.Verifiers = []JoinVerifier{captcha{}}
	}, func(t *testing.T, e *env) {
		ev := e.createEvent(t, `{"name":"Captcha","ticket_quantity":10,"waiting_room":{"admit_per_minute":600,"pass_seconds":10}}`)
		path := fmt.Sprintf("/api/events/%d/queue", ev.ID)
		wantCode(t, e.must(t, request{method: "POST", path: path, headers: visitor(tokenA)}, 422), ticketrush.EChallengeFailed)
		e.must(t, request{method: "POST", path: path, headers: map[string]string{"Visitor-Token": tokenA, "Captcha-Response": "human"}}, http.StatusCreated)

		// With a proof of work as well, both must pass, and a fresh
		// captcha does not let the old challenge make a new entry.
		e.must(t, request{method: "PATCH", path: fmt.Sprintf("/api/admin/events/%d", ev.ID), headers: admin(), body: `{"waiting_room":{"challenge_bits":4}}`}, 200)
		ch := decode[Challenge](t, e.must(t, request{method: "GET", path: path + "/challenge", headers: visitor(tokenB)}, 200))
		body := fmt.Sprintf(`{"challenge":%q,"nonce":%q}`, ch.Challenge, solveChallenge(ch.Challenge, tokenB, 4))
		e.must(t, request{method: "POST", path: path, headers: map[string]string{"Visitor-Token": tokenB}, body: body}, 422)
		e.must(t, request{method: "POST", path: path, headers: map[string]string{"Visitor-Token": tokenB, "Captcha-Response": "human-1"}, body: body}, http.StatusCreated)
		e.advance(t, ev.ID)
		e.clock.Advance(11 * time.Second)
		if s := e.poll(t, ev.ID, tokenB); s.State != "expired" {
			t.Fatalf("B = %+v", s)
		}
		wantCode(t, e.must(t, request{method: "POST", path: path, headers: map[string]string{"Visitor-Token": tokenB, "Captcha-Response": "human-2"}, body: body}, 422), ticketrush.EChallengeFailed)
	})
}

// TestJoinQuota: joins beyond the per-address quota answer 429.
func TestJoinQuota(t *testing.T) {
	forEachRoomBackendWith(t, func(c *WaitingRoomConfig) {
		c.CacheTTL = -1
		c.JoinsPerSecond, c.JoinBurst = 0.001, 2
	}, func(t *testing.T, e *env) {
		ev := e.createEvent(t, `{"name":"Quota","ticket_quantity":10,"waiting_room":{"admit_per_minute":10}}`)
		var token string
		for range 2 {
			_, res := e.join(t, ev.ID, "", "", http.StatusCreated)
			token = res.header.Get("Visitor-Token")
		}
		res := e.must(t, request{method: "POST", path: fmt.Sprintf("/api/events/%d/queue", ev.ID)}, http.StatusTooManyRequests)
		wantCode(t, res, ticketrush.ERateLimited)
		// Polls are not joins.
		e.poll(t, ev.ID, token)
	})
}

// TestConcurrentJoins: joins arriving together are group-committed and
// get dense, distinct positions; each visitor's repeat keeps its place.
func TestConcurrentJoins(t *testing.T) {
	forEachRoomBackend(t, func(t *testing.T, e *env) {
		ev := e.createEvent(t, `{"name":"Crowd","ticket_quantity":10,"waiting_room":{"admit_per_minute":10}}`)
		const n = 60
		tokens := make([]string, n)
		positions := make([]int64, n)
		var wg sync.WaitGroup
		for i := range n {
			tokens[i] = fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			wg.Go(func() {
				res := e.do(t, request{method: "POST", path: fmt.Sprintf("/api/events/%d/queue", ev.ID), headers: visitor(tokens[i])})
				if res.status != http.StatusCreated {
					t.Errorf("join %d: %d %s", i, res.status, res.body)
					return
				}
				positions[i] = *decode[QueueStatus](t, res).Position
			})
		}
		wg.Wait()
		seen := map[int64]bool{}
		for _, p := range positions {
			if p < 1 || p > n || seen[p] {
				t.Fatalf("positions %v: not 1…%d once each", positions, n)
			}
			seen[p] = true
		}
		for i := range 5 {
			if s, _ := e.join(t, ev.ID, tokens[i], "", http.StatusOK); *s.Position != positions[i] {
				t.Errorf("repeat join of %d: position %d, was %d", i, *s.Position, positions[i])
			}
		}
	})
}
