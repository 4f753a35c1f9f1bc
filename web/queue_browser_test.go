package web_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser tests of the waiting room (the buyer's queue, the organiser's
// controls) and of the event lifecycle (closed, hidden, which event the
// buyer page picks, how far sale times read).

// TestPowWorkerDigests checks the worker's two SHA-256 engines against
// known digests, one block and several: the built-in one serves pages on
// plain http, where browsers have no crypto.subtle.
func TestPowWorkerDigests(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	b := newBrowser(t)
	p := b.visitor("buyer")
	p.do("open", chromedp.Navigate(s.URL+"/"))
	for _, text := range []string{"", "abc", strings.Repeat("0123456789", 13) + "ü", "k7:0f8fad5b-d9cb-469f-a165-70867728950e:A1z"} {
		sum := sha256.Sum256([]byte(text))
		want := hex.EncodeToString(sum[:])
		for _, engine := range []string{"js", "subtle"} {
			got, err := p.evalAsync(`new Promise((resolve) => {
				const w = new Worker('/static/pow.js');
				w.onmessage = (m) => { w.terminate(); resolve(m.data.hex); };
				w.postMessage({ type: 'digest', text: ` + jsString(text) + `, engine: ` + jsString(engine) + ` });
			})`)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s engine: sha256(%q) = %s, want %s", engine, text, got, want)
			}
		}
	}
	// The search finds answers the server's rule accepts, whatever the
	// challenge's length: the nonce in the first block, after a block
	// hashed once, or across two blocks.
	for _, challenge := range []string{"c1", "abcdefghijklmnopqrst", "abcdefghijklmnopqrstuvwxyz0123", strings.Repeat("x", 100)} {
		got, err := p.evalAsync(`new Promise((resolve) => {
			const w = new Worker('/static/pow.js');
			w.onmessage = (m) => { if (m.data.type !== 'progress') { w.terminate(); resolve(m.data.nonce || m.data.message); } };
			w.postMessage({ challenge: ` + jsString(challenge) + `, token: 'A0F8FAD5-D9CB-469F-A165-70867728950E', bits: 10, prefix: 'B' });
		})`)
		if err != nil {
			t.Fatal(err)
		}
		if !validNonce(challenge, "a0f8fad5-d9cb-469f-a165-70867728950e", got, 10) {
			t.Errorf("challenge %q: nonce %q does not meet 10 bits", challenge, got)
		}
	}
}

// validNonce is the server's rule, written out again: SHA-256 of
// challenge:token:nonce starts with bits zero bits.
func validNonce(challenge, token, nonce string, bits int) bool {
	if len(nonce) < 1 || len(nonce) > 64 {
		return false
	}
	for _, c := range nonce {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	d := sha256.Sum256([]byte(challenge + ":" + strings.ToLower(token) + ":" + nonce))
	for i := 0; i < bits; i++ {
		if d[i/8]&(0x80>>(i%8)) != 0 {
			return false
		}
	}
	return true
}

// solve finds a nonce in Go, as a client other than the page would.
func solve(challenge, token string, bits int) string {
	for n := 0; ; n++ {
		nonce := "g" + strconv.Itoa(n)
		if validNonce(challenge, token, nonce, bits) {
			return nonce
		}
	}
}

// recorded is one API request the page made, as the server got it.
type recorded struct {
	method, path string
	header       http.Header
	body         []byte
}

// recorder keeps the requests the page sends to the API.
type recorder struct {
	mu   sync.Mutex
	reqs []recorded
}

func (rec *recorder) wrap(api http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") && !strings.HasSuffix(r.URL.Path, "/stream") {
			var body []byte
			if r.Body != nil {
				body, _ = io.ReadAll(r.Body)
				r.Body = io.NopCloser(bytes.NewReader(body))
			}
			rec.mu.Lock()
			rec.reqs = append(rec.reqs, recorded{r.Method, r.URL.Path, r.Header.Clone(), body})
			rec.mu.Unlock()
		}
		api.ServeHTTP(w, r)
	})
}

// find returns the requests with method and path that came from the
// browser (not the test's own Go client).
func (rec *recorder) find(method, path string) []recorded {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	var out []recorded
	for _, r := range rec.reqs {
		if r.method == method && r.path == path && strings.Contains(r.header.Get("User-Agent"), "Chrome") {
			out = append(out, r)
		}
	}
	return out
}

// queueEntry is the queue answer's data.
type queueEntry struct {
	EventID              int64   `json:"event_id"`
	State                string  `json:"state"`
	Position             *int64  `json:"position"`
	Ahead                *int64  `json:"ahead"`
	EstimatedWaitSeconds *int64  `json:"estimated_wait_seconds"`
	Pass                 *string `json:"pass"`
	PassExpiresAt        *string `json:"pass_expires_at"`
}

// joinAs joins an event's queue from Go as visitor token, solving the
// challenge when the room asks one.
func (s *server) joinAs(t *testing.T, eventID int64, token string) queueEntry {
	t.Helper()
	h := map[string]string{"Visitor-Token": token}
	var ch struct {
		Challenge string `json:"challenge"`
		Bits      int    `json:"bits"`
	}
	s.call(t, http.MethodGet, fmt.Sprintf("/api/events/%d/queue/challenge", eventID), h, nil, http.StatusOK, &ch)
	body := map[string]string{}
	if ch.Bits > 0 {
		body = map[string]string{"challenge": ch.Challenge, "nonce": solve(ch.Challenge, token, ch.Bits)}
	}
	var q queueEntry
	s.call(t, http.MethodPost, fmt.Sprintf("/api/events/%d/queue", eventID), h, body, http.StatusCreated, &q)
	return q
}

// patchEvent sends a merge patch of an event through the admin API.
func (s *server) patchEvent(t *testing.T, id int64, patch map[string]any) adminEvent {
	t.Helper()
	var e adminEvent
	s.call(t, http.MethodPatch, fmt.Sprintf("/api/admin/events/%d", id), map[string]string{"Authorization": "Bearer " + adminToken}, patch, http.StatusOK, &e)
	return e
}

// adminEvent is an event as admin answers show it.
type adminEvent struct {
	ID          int64  `json:"id"`
	Name        string `json:"name"`
	Hidden      bool   `json:"hidden"`
	SaleClosed  bool   `json:"sale_closed"`
	WaitingRoom *struct {
		AdmitPerMinute int64 `json:"admit_per_minute"`
		Paused         bool  `json:"paused"`
		ChallengeBits  int64 `json:"challenge_bits"`
	} `json:"waiting_room"`
}

func (s *server) adminEvent(t *testing.T, id int64) adminEvent {
	t.Helper()
	var list []adminEvent
	s.call(t, http.MethodGet, "/api/admin/events", map[string]string{"Authorization": "Bearer " + adminToken}, nil, http.StatusOK, &list)
	for _, e := range list {
		if e.ID == id {
			return e
		}
	}
	t.Fatalf("event %d is not in the admin listing", id)
	return adminEvent{}
}

const visitorA = "0f8fad5b-d9cb-469f-a165-70867728950e"

// TestBuyerWaitingRoom goes through the waiting room as a buyer: the
// challenge is solved in the page's workers with a progress bar, the page
// shows the place, the wait and a pause, and when the turn comes it
// reserves by itself with the pass; the purchase follows. A cancelled hold
// ends the turn, and the page offers a new place.
func TestBuyerWaitingRoom(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	s := newServer(t, serverOptions{wrapAPI: rec.wrap, keepQueues: 100 * time.Millisecond})
	e := s.createEvent(t, map[string]any{"name": "Kuyruklu Konser", "ticket_quantity": 20, "max_per_visitor": 4,
		"waiting_room": map[string]any{"admit_per_minute": 1, "challenge_bits": 12}})

	// Someone joined before the buyer and took the minute's one admission.
	first := s.joinAs(t, e.ID, visitorA)
	if first.Position == nil || *first.Position != 1 {
		t.Fatalf("first join: %+v", first)
	}

	b := newBrowser(t)
	p := b.visitor("buyer")
	p.do("open", chromedp.Navigate(s.URL+"/"))
	p.until("the waiting room is explained", visible("#queue")+` && document.querySelector('#reserve').textContent === 'Join the queue' && document.querySelector('#queue-text').textContent.includes('waiting room')`, uiWithin)
	p.shot("queue-intro")

	// Watch the progress bar from the first moment: 12 bits take a blink.
	p.do("watch the progress bar", chromedp.Evaluate[chromedp.Void](`(() => {
		window.seen = { solve: false, progress: 0 };
		const look = () => {
			if (!document.querySelector('#queue-solve').hidden) window.seen.solve = true;
			window.seen.progress = Math.max(window.seen.progress, Number(document.querySelector('#queue-progress').getAttribute('aria-valuenow')));
		};
		new MutationObserver(look).observe(document.querySelector('#queue'), { attributes: true, subtree: true, childList: true });
	})()`))
	p.do("join for 2 tickets", chromedp.SetValue(chromedp.ID("amount"), "2"), chromedp.Click(chromedp.ID("reserve")))
	p.until("the place is shown", visible("#queue-place")+` && document.querySelector('#queue-position').textContent === '2'`, uiWithin)
	if seen, _ := p.eval(`window.seen.solve && window.seen.progress > 0`); seen != "true" {
		t.Fatalf("the progress bar was not shown while solving: %s", must(p.eval(`JSON.stringify(window.seen)`)))
	}
	if got := p.text("#queue-state"); got != "In the queue" {
		t.Fatalf("queue badge = %q", got)
	}
	if got := p.text("#queue-wait"); got == "–" || got == "" {
		t.Fatalf("estimated wait = %q", got)
	}
	if got := p.text("#reserve"); got != "Waiting for your turn" {
		t.Fatalf("button while waiting = %q", got)
	}
	p.until("live updates are announced", `document.querySelector('#queue-live').textContent.includes('next check in')`, uiWithin)
	p.shot("queue-waiting")

	// The token existed before the join, and the join carried a nonce that
	// meets the rule for that token.
	challenges := rec.find(http.MethodGet, fmt.Sprintf("/api/events/%d/queue/challenge", e.ID))
	joins := rec.find(http.MethodPost, fmt.Sprintf("/api/events/%d/queue", e.ID))
	if len(challenges) != 1 || len(joins) != 1 {
		t.Fatalf("challenge requests %d, joins %d; want 1 and 1", len(challenges), len(joins))
	}
	token := challenges[0].header.Get("Visitor-Token")
	if token == "" || joins[0].header.Get("Visitor-Token") != token {
		t.Fatalf("visitor tokens: challenge %q, join %q", token, joins[0].header.Get("Visitor-Token"))
	}
	var jb struct{ Challenge, Nonce string }
	if err := json.Unmarshal(joins[0].body, &jb); err != nil || !validNonce(jb.Challenge, token, jb.Nonce, 12) {
		t.Fatalf("join body %s does not meet 12 bits (%v)", joins[0].body, err)
	}

	// The organiser pauses: the page says so and keeps the place.
	s.patchEvent(t, e.ID, map[string]any{"waiting_room": map[string]any{"paused": true}})
	p.until("the pause is shown", `document.querySelector('#queue-state').textContent === 'Paused' && document.querySelector('#queue-text').textContent.includes('paused') && document.querySelector('#queue-position').textContent === '2'`, uiWithin)
	p.shot("queue-paused")

	// Resumed at a high rate: the turn comes, and the page reserves by
	// itself with the pass.
	s.patchEvent(t, e.ID, map[string]any{"waiting_room": map[string]any{"paused": false, "admit_per_minute": 600}})
	p.until("the hold made with the turn", visible("#hold")+` && document.querySelector('#hold-amount').textContent === '2 tickets'`, uiWithin+5*time.Second)
	reserves := rec.find(http.MethodPost, "/api/reserve")
	if len(reserves) != 1 {
		t.Fatalf("reserves = %d, want 1", len(reserves))
	}
	r := reserves[0]
	if r.header.Get("Admission-Pass") == "" || r.header.Get("Idempotency-Key") == "" || r.header.Get("Visitor-Token") != token {
		t.Fatalf("reserve headers: pass %q, key %q, token %q (want %q)", r.header.Get("Admission-Pass"), r.header.Get("Idempotency-Key"), r.header.Get("Visitor-Token"), token)
	}
	p.until("the turn is marked used, the hold counted", `document.querySelector('#queue-state').textContent === 'Turn used' && `+available(18), uiWithin)
	p.shot("queue-reserved")

	// A cancelled hold ends the turn; the page offers a new place.
	p.do("cancel", chromedp.Click(chromedp.ID("cancel")))
	p.until("the turn has ended", `document.querySelector('#queue-state').textContent === 'Turn ended' && document.querySelector('#reserve').textContent === 'Join the queue again' && !document.querySelector('#reserve').disabled`, uiWithin)
	p.shot("queue-expired")

	// Joining again: a fresh challenge, a place at the back, a new turn,
	// and this time the purchase.
	p.do("join again", chromedp.Click(chromedp.ID("reserve")))
	p.until("held again", visible("#hold"), uiWithin+5*time.Second)
	if n := len(rec.find(http.MethodGet, fmt.Sprintf("/api/events/%d/queue/challenge", e.ID))); n != 2 {
		t.Fatalf("challenge requests after joining again = %d, want 2", n)
	}
	var again queueEntry
	s.call(t, http.MethodGet, fmt.Sprintf("/api/events/%d/queue", e.ID), map[string]string{"Visitor-Token": token}, nil, http.StatusOK, &again)
	if again.Position == nil || *again.Position != 3 {
		t.Fatalf("place after joining again = %+v, want 3", again)
	}
	p.do("buy", chromedp.Click(chromedp.ID("purchase")))
	p.until("bought", visible("#done"), uiWithin)
	if st := s.stats(t, e.ID); st.Purchased != 2 || st.Held != 0 || st.Cancelled != 2 {
		t.Fatalf("stats: %+v", st)
	}
	p.shot("queue-bought")

	// A reload knows the turn was used: no second reserve with it.
	p.do("reload", chromedp.Reload())
	p.until("the used turn is shown", `document.querySelector('#queue-state').textContent === 'Turn used'`, uiWithin)
	time.Sleep(500 * time.Millisecond)
	if n := len(rec.find(http.MethodPost, "/api/reserve")); n != 2 {
		t.Fatalf("reserves after the reload = %d, want 2", n)
	}
}

// TestBuyerPrequeue joins before the sale opens: the page says places are
// drawn at random at the start, shows no place until then, and reserves
// by itself once the shuffle has let the buyer in.
func TestBuyerPrequeue(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{keepQueues: 100 * time.Millisecond})
	b := newBrowser(t) // first: starting chromium may take seconds
	// Far enough for the page to join and show the pre-queue on a loaded
	// machine, near enough for a quick test.
	start := time.Now().Add(8 * time.Second).Truncate(time.Second)
	e := s.createEvent(t, map[string]any{"name": "Ön Sıra", "ticket_quantity": 10, "sale_starts_at": start.UTC().Format(time.RFC3339),
		"waiting_room": map[string]any{"admit_per_minute": 600, "prequeue_opens_at": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)}})
	p := b.visitor("buyer")
	p.do("open", chromedp.Navigate(s.URL+"/"))
	p.until("the pre-queue is explained", `document.querySelector('#queue-text').textContent.includes('drawn at random') && document.querySelector('#reserve').textContent === 'Join the queue' && !document.querySelector('#reserve').disabled`, uiWithin)
	p.do("join", chromedp.Click(chromedp.ID("reserve")))
	p.until("in the pre-queue, with no place yet", `document.querySelector('#queue-state').textContent === 'In the pre-queue' && !`+visible("#queue-place"), uiWithin)
	t.Logf("in the pre-queue %v before the sale", time.Until(start))
	p.shot("prequeue")
	p.until("the turn comes after the shuffle and the page reserves", visible("#hold")+` && document.querySelector('#hold-amount').textContent === '1 ticket'`, time.Until(start)+20*time.Second)
	var q queueEntry
	token := must(p.eval(`localStorage.getItem('ticketrush.visitor')`))
	s.call(t, http.MethodGet, fmt.Sprintf("/api/events/%d/queue", e.ID), map[string]string{"Visitor-Token": token}, nil, http.StatusOK, &q)
	if q.State != "admitted" || q.Position == nil || *q.Position != 1 {
		t.Fatalf("entry after the sale start: %+v", q)
	}
}

// TestBuyerWaitingRoomProgress shows the progress bar of a slower
// challenge long enough to see it, on a phone-sized screen.
func TestBuyerWaitingRoomProgress(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{keepQueues: 100 * time.Millisecond})
	s.createEvent(t, map[string]any{"name": "Zor Bulmaca", "ticket_quantity": 100,
		"waiting_room": map[string]any{"admit_per_minute": 600, "challenge_bits": 22, "paused": true}})
	b := newBrowser(t)
	p := b.visitor("phone")
	p.do("open at phone width", chromedp.EmulateViewport(375, 740, chromedp.EmulateMobile, chromedp.EmulateScale(2)), chromedp.Navigate(s.URL+"/"))
	p.until("loaded", `document.querySelector('#reserve').textContent === 'Join the queue'`, uiWithin)
	p.do("join", chromedp.Click(chromedp.ID("reserve")))
	p.until("the progress bar moves", visible("#queue-progress")+` && Number(document.querySelector('#queue-progress').getAttribute('aria-valuenow')) > 0 && document.querySelector('#queue-progress-text').textContent.includes('%')`, uiWithin)
	if got := p.text("#reserve"); got != "Joining…" {
		t.Fatalf("button while solving = %q", got)
	}
	p.until("nothing wider than the screen", `document.documentElement.scrollWidth <= window.innerWidth`, uiWithin)
	p.shot("solving")
}

// TestAdminWaitingRoom runs a waiting room from the dashboard: its counts,
// pause and resume, and a new rate, each checked through the API.
func TestAdminWaitingRoom(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{keepQueues: 100 * time.Millisecond})
	e := s.createEvent(t, map[string]any{"name": "Sıra Var", "ticket_quantity": 100,
		"waiting_room": map[string]any{"admit_per_minute": 600, "paused": true}})
	for i := range 3 {
		s.joinAs(t, e.ID, fmt.Sprintf("%08d-d9cb-469f-a165-70867728950e", i))
	}
	b := newBrowser(t)
	p := b.visitor("organiser")
	p.do("open", chromedp.Navigate(s.URL+"/admin"))
	p.do("sign in", chromedp.SendKeys(chromedp.ID("token"), adminToken), chromedp.KeyEvent("\r"))
	card := fmt.Sprintf(`document.querySelector('#dash-event-%d')`, e.ID)
	q := func(k string) string { return card + `.querySelector('dd[data-q="` + k + `"]').dataset.value` }
	p.until("the queue counts", visible(fmt.Sprintf("#dash-event-%d .dash-queue", e.ID))+` && `+q("in_queue")+` === '3' && `+q("admitted")+` === '0'`, uiWithin)
	if got := p.text(fmt.Sprintf("#dash-event-%d .dash-queue-state", e.ID)); got != "Paused" {
		t.Fatalf("queue state = %q", got)
	}
	p.shot("paused")

	p.do("resume", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#dash-event-%d button[data-action="pause"]`, e.ID))))
	p.until("admission goes on", card+`.querySelector('.dash-queue-state').textContent === 'Admitting' && `+q("admitted")+` === '3' && `+q("active")+` === '3' && `+q("admitted_per_minute")+` === '3' && `+q("in_queue")+` === '0'`, uiWithin)
	if ev := s.adminEvent(t, e.ID); ev.WaitingRoom == nil || ev.WaitingRoom.Paused {
		t.Fatalf("after resume: %+v", ev.WaitingRoom)
	}
	p.do("pause", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#dash-event-%d button[data-action="pause"]`, e.ID))))
	p.until("paused again", card+`.querySelector('.dash-queue-state').textContent === 'Paused'`, uiWithin)
	if ev := s.adminEvent(t, e.ID); ev.WaitingRoom == nil || !ev.WaitingRoom.Paused {
		t.Fatalf("after pause: %+v", ev.WaitingRoom)
	}

	rate := fmt.Sprintf("#rate-%d", e.ID)
	p.do("a bad rate", chromedp.SetValue(chromedp.ID(rate[1:]), "0"), chromedp.Click(chromedp.CSS(fmt.Sprintf(`#dash-event-%d button[data-action="rate"]`, e.ID))))
	p.until("the rate is refused", fmt.Sprintf(`document.querySelector('#rate-%d-error').textContent.includes('1 to 1,000,000')`, e.ID), uiWithin)
	p.do("a new rate", chromedp.SetValue(chromedp.ID(rate[1:]), "1234"), chromedp.Click(chromedp.CSS(fmt.Sprintf(`#dash-event-%d button[data-action="rate"]`, e.ID))))
	p.until("the rate is confirmed", `document.querySelector('#notice').textContent.includes('1,234')`, uiWithin)
	if ev := s.adminEvent(t, e.ID); ev.WaitingRoom == nil || ev.WaitingRoom.AdmitPerMinute != 1234 || !ev.WaitingRoom.Paused {
		t.Fatalf("after the rate change: %+v", ev.WaitingRoom)
	}
	p.do("settle", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	p.shot("rate")
}

// TestAdminCloseAndHide closes and hides an event from the dashboard; the
// API and the buyer page follow.
func TestAdminCloseAndHide(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	keep := s.createEvent(t, map[string]any{"name": "Açık Kalan", "ticket_quantity": 10})
	e := s.createEvent(t, map[string]any{"name": "Kapanacak", "ticket_quantity": 10})
	b := newBrowser(t)
	admin := b.visitor("organiser")
	admin.do("open", chromedp.Navigate(s.URL+"/admin"))
	admin.do("sign in", chromedp.SendKeys(chromedp.ID("token"), adminToken), chromedp.KeyEvent("\r"))
	sel := func(action string) string {
		return fmt.Sprintf(`#dash-event-%d button[data-action="%s"]`, e.ID, action)
	}
	admin.until("the event's buttons", visible(sel("close"))+` && `+visible(sel("hide")), uiWithin)

	buyer := b.visitor("buyer")
	buyer.do("open", chromedp.Navigate(s.URL+"/"))
	buyer.until("both events", `document.querySelectorAll('#events label').length === 2`, uiWithin)

	admin.do("close the sale", chromedp.Click(chromedp.CSS(sel("close"))))
	admin.until("closed", fmt.Sprintf(`document.querySelector('#dash-event-%d').dataset.closed === 'true' && document.querySelector(%s).textContent === 'Reopen sale'`, e.ID, jsString(sel("close"))), uiWithin)
	if ev := s.adminEvent(t, e.ID); !ev.SaleClosed {
		t.Fatal("the API does not show the sale closed")
	}
	s.call(t, http.MethodPost, "/api/reserve", map[string]string{"Visitor-Token": visitorA}, map[string]any{"event_id": e.ID, "amount": 1}, http.StatusConflict, nil)

	buyer.do("reload", chromedp.Reload())
	buyer.until("the list", `document.querySelectorAll('#events label').length === 2`, uiWithin)
	buyer.do("pick the closed event", chromedp.Click(chromedp.CSS(fmt.Sprintf(`#event-%d`, e.ID))))
	buyer.until("the sale reads closed", `document.querySelector('#reserve').textContent === 'Sale closed' && document.querySelector('#reserve').disabled && `+visible("#ev-sale")+fmt.Sprintf(` && document.querySelector('#event-meta-%d').textContent.includes('Sale closed')`, e.ID), uiWithin)
	buyer.shot("closed")

	admin.do("hide it", chromedp.Click(chromedp.CSS(sel("hide"))))
	admin.until("hidden, still on the dashboard", fmt.Sprintf(`document.querySelector('#dash-event-%d').dataset.hidden === 'true' && document.querySelector('#dash-event-%d .dash-badges').textContent.includes('Hidden')`, e.ID, e.ID), uiWithin)
	admin.do("reload", chromedp.Reload())
	admin.until("a hidden event stays on the dashboard", fmt.Sprintf(`!!document.querySelector('#dash-event-%d') && document.querySelector('#dash-event-%d').dataset.hidden === 'true'`, e.ID, e.ID), uiWithin)
	admin.do("settle", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	admin.shot("closed-hidden")
	var public []adminEvent
	s.call(t, http.MethodGet, "/api/events", nil, nil, http.StatusOK, &public)
	if len(public) != 1 || public[0].ID != keep.ID {
		t.Fatalf("public listing after hiding: %+v", public)
	}
	buyer.do("reload", chromedp.Reload())
	buyer.until("the hidden event is gone", `document.querySelectorAll('#events label').length === 1 && document.querySelector('#ev-title').textContent === 'Açık Kalan'`, uiWithin)

	admin.do("show it again", chromedp.Click(chromedp.CSS(sel("hide"))))
	admin.until("shown", fmt.Sprintf(`document.querySelector('#dash-event-%d').dataset.hidden === 'false'`, e.ID), uiWithin)
	admin.do("reopen", chromedp.Click(chromedp.CSS(sel("close"))))
	admin.until("open", fmt.Sprintf(`document.querySelector('#dash-event-%d').dataset.closed === 'false'`, e.ID), uiWithin)
	if ev := s.adminEvent(t, e.ID); ev.SaleClosed || ev.Hidden {
		t.Fatalf("after reopening and showing: %+v", ev)
	}
}

// TestBuyerPreselectsOnSale: the page opens on the first event on sale,
// not the newest when that is sold out or closed; with none on sale, on
// the one opening soonest. Sales days away read as dates.
func TestBuyerPreselectsOnSale(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	far := time.Now().Add(72 * time.Hour).Truncate(time.Hour).Add(10 * time.Minute)
	soon := time.Now().Add(2 * time.Hour)
	s.createEvent(t, map[string]any{"name": "Üç Gün Sonra", "ticket_quantity": 10, "sale_starts_at": far.UTC().Format(time.RFC3339)})
	s.createEvent(t, map[string]any{"name": "İki Saat Sonra", "ticket_quantity": 10, "sale_starts_at": soon.UTC().Format(time.RFC3339)})
	open := s.createEvent(t, map[string]any{"name": "Satışta", "ticket_quantity": 10})
	sold := s.createEvent(t, map[string]any{"name": "Tükendi", "ticket_quantity": 1})
	s.reserve(t, sold.ID, 1)
	closed := s.createEvent(t, map[string]any{"name": "Kapandı", "ticket_quantity": 10})
	s.patchEvent(t, closed.ID, map[string]any{"sale_closed": true})

	b := newBrowser(t)
	p := b.visitor("buyer")
	p.do("open", chromedp.Navigate(s.URL+"/"))
	p.until("the event on sale is chosen", `document.querySelectorAll('#events label').length === 5 && document.querySelector('#ev-title').textContent === 'Satışta'`, uiWithin)
	if got, _ := p.eval(fmt.Sprintf(`document.querySelector('#event-%d input').checked`, open.ID)); got != "true" {
		t.Fatal("the radio button of the chosen event is not checked")
	}

	// A sale days away reads as a date, one hours away as a countdown.
	p.do("pick the far sale", chromedp.Click(chromedp.CSS(`#events label:nth-of-type(5)`)))
	p.until("the far sale", `document.querySelector('#ev-title').textContent === 'Üç Gün Sonra'`, uiWithin)
	date, err := p.eval(`new Intl.DateTimeFormat('en-GB', { weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).format(new Date(` + strconv.FormatInt(far.UnixMilli(), 10) + `))`)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.text("#reserve"); got != "Opens "+date {
		t.Fatalf("button of a sale 3 days away = %q, want %q", got, "Opens "+date)
	}
	if !strings.Contains(date, ",") || strings.Contains(p.text("#reserve"), "Opens in") {
		t.Fatalf("date text %q", date)
	}
	if got := p.text("#ev-sale"); got != "The sale opens "+date+"." {
		t.Fatalf("sale line = %q", got)
	}
	p.shot("far-sale")
	p.do("pick the near sale", chromedp.Click(chromedp.CSS(`#events label:nth-of-type(4)`)))
	p.until("a countdown for the near sale", `document.querySelector('#ev-title').textContent === 'İki Saat Sonra' && /^Opens in [12]:[0-5][0-9]:[0-5][0-9]$/.test(document.querySelector('#reserve').textContent)`, uiWithin)

	// With nothing on sale, the soonest sale is chosen.
	s2 := newServer(t, serverOptions{})
	s2.createEvent(t, map[string]any{"name": "Erken", "ticket_quantity": 10, "sale_starts_at": soon.UTC().Format(time.RFC3339)})
	s2.createEvent(t, map[string]any{"name": "Geç", "ticket_quantity": 10, "sale_starts_at": far.UTC().Format(time.RFC3339)})
	q := b.visitor("buyer of the second server")
	q.do("open", chromedp.Navigate(s2.URL+"/"))
	q.until("the soonest sale is chosen", `document.querySelectorAll('#events label').length === 2 && document.querySelector('#ev-title').textContent === 'Erken'`, uiWithin)
}

// TestAdminReleasedHoldsChart: released holds get a chart of their own, so
// the stock chart's axis ends at the capacity however many holds came back.
func TestAdminReleasedHoldsChart(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	e := s.createEvent(t, map[string]any{"name": "Geri Gelen", "ticket_quantity": 5, "max_per_order": 5})
	for range 4 {
		r := s.reserve(t, e.ID, 5)
		s.call(t, http.MethodDelete, fmt.Sprintf("/api/reservations/%d", r.ID), map[string]string{"Visitor-Token": r.UserUID}, nil, http.StatusOK, nil)
	}
	b := newBrowser(t)
	p := b.visitor("organiser")
	p.do("open", chromedp.Navigate(s.URL+"/admin"))
	p.do("sign in", chromedp.SendKeys(chromedp.ID("token"), adminToken), chromedp.KeyEvent("\r"))
	card := fmt.Sprintf(`document.querySelector('#dash-event-%d')`, e.ID)
	p.until("the charts", card+` && `+card+`.querySelector('dd[data-k="cancelled"]').dataset.value === '20' && `+card+`.querySelectorAll('svg.chart-released path').length === 2`, uiWithin)
	top := func(chart string) string {
		v, err := p.eval(`Math.max(...[...` + card + `.querySelectorAll('svg.` + chart + ` text.axis-label')].map(t => Number(t.textContent.replace(/,/g, ''))).filter(Number.isFinite))`)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := top("chart-stock"); got != "5" {
		t.Fatalf("stock chart's axis tops at %s, want the capacity 5", got)
	}
	if got := top("chart-released"); got != "20" {
		t.Fatalf("released chart's axis tops at %s, want 20", got)
	}
	p.do("settle", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	p.shot("released")
}

// evalAsync returns the value a JavaScript promise resolves to.
func (tb *tab) evalAsync(expr string) (string, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string](expr, chromedp.EvalAwaitPromise))
}

func must(s string, err error) string {
	if err != nil {
		return err.Error()
	}
	return s
}

// TestAdminCreatesWaitingRoom creates an event with a waiting room from the
// dashboard's form; a bad rate is named on its field.
func TestAdminCreatesWaitingRoom(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	b := newBrowser(t)
	p := b.visitor("organiser")
	p.do("open", chromedp.Navigate(s.URL+"/admin"))
	p.do("sign in", chromedp.SendKeys(chromedp.ID("token"), adminToken), chromedp.KeyEvent("\r"))
	p.until("the form", visible("#create"), uiWithin)
	p.do("fill in",
		chromedp.SendKeys(chromedp.ID("name"), "Sıralı Gece"),
		chromedp.SendKeys(chromedp.ID("ticket_quantity"), "300"),
		chromedp.Click(chromedp.ID("wr_on")))
	p.until("the room's fields", visible("#wr_admit_per_minute"), uiWithin)
	p.do("a rate too high", chromedp.SetValue(chromedp.ID("wr_admit_per_minute"), "2000000"), chromedp.SetValue(chromedp.ID("wr_challenge_bits"), "8"), chromedp.Click(chromedp.ID("create-btn")))
	p.until("the server names the field", `document.querySelector('#wr_admit_per_minute-error').textContent.startsWith('Admit per minute') && document.querySelector('#wr_admit_per_minute').getAttribute('aria-invalid') === 'true'`, uiWithin)
	p.do("a good rate", chromedp.SetValue(chromedp.ID("wr_admit_per_minute"), "120"), chromedp.Click(chromedp.ID("create-btn")))
	p.until("created, with its waiting room", `document.querySelector('#notice').textContent.includes('Sıralı Gece') && !!document.querySelector('.dash-event .dash-queue:not([hidden])')`, uiWithin)
	var list []adminEvent
	s.call(t, http.MethodGet, "/api/admin/events", map[string]string{"Authorization": "Bearer " + adminToken}, nil, http.StatusOK, &list)
	if len(list) != 1 || list[0].WaitingRoom == nil || list[0].WaitingRoom.AdmitPerMinute != 120 || list[0].WaitingRoom.ChallengeBits != 8 || list[0].WaitingRoom.Paused {
		t.Fatalf("events after creating: %+v", list)
	}
}
