package web_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Browser tests drive Debian's chromium through the DevTools protocol.
// Without chromium they skip, unless TICKETRUSH_REQUIRE_BROWSER=1 or
// TICKETRUSH_REQUIRE_SERVERS=1 (as in CI), where they fail.

const chromiumPath = "/usr/bin/chromium"

// Time limits of browser tests. A change another client makes must show
// within liveWithin; other steps get uiWithin, generous for a loaded CI
// machine.
const (
	stepTimeout = 20 * time.Second
	uiWithin    = 10 * time.Second
	liveWithin  = 2 * time.Second
)

func findChromium(t *testing.T) string {
	t.Helper()
	path := chromiumPath
	if _, err := os.Stat(path); err != nil {
		if p, err := exec.LookPath("chromium"); err == nil {
			path = p
		} else {
			msg := fmt.Sprintf("browser test needs chromium at %s (install: apt-get install -y chromium)", chromiumPath)
			if os.Getenv("TICKETRUSH_REQUIRE_BROWSER") == "1" || os.Getenv("TICKETRUSH_REQUIRE_SERVERS") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg + "; set TICKETRUSH_REQUIRE_BROWSER=1 to fail instead of skipping")
		}
	}
	return path
}

// artifactsDir is where screenshots go: TICKETRUSH_ARTIFACTS, else a
// temporary directory. Never the repository.
func artifactsDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("TICKETRUSH_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// The browser tests share one chromium process, started by the first test
// that needs it with a fresh profile in a temporary directory: starting
// chromium costs seconds, a browser context costs milliseconds. Each test
// opens its tabs in browser contexts of its own, so no two tests (and no
// two visitors of one test) share cookies or storage.
var shared struct {
	once   sync.Once
	ctx    context.Context
	err    error
	cancel func()
}

// stopBrowser ends the shared chromium; TestMain calls it.
func stopBrowser() {
	if shared.cancel != nil {
		shared.cancel()
	}
}

func startBrowser(path string) {
	dir, err := os.MkdirTemp("", "ticketrush-chromium-")
	if err != nil {
		shared.err = err
		return
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in CI containers
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1000, 700),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	shared.ctx = ctx
	shared.cancel = func() {
		cancelCtx()
		cancelAlloc()
		os.RemoveAll(dir)
	}
	shared.err = chromedp.Do(ctx)
}

// browser is one test's view of the shared chromium.
type browser struct {
	t   *testing.T
	dir string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := findChromium(t)
	shared.once.Do(func() { startBrowser(path) })
	if shared.err != nil {
		t.Fatalf("start chromium: %v", shared.err)
	}
	return &browser{t: t, dir: artifactsDir(t)}
}

// tab is one page in a browser context of its own.
type tab struct {
	t    *testing.T
	ctx  context.Context
	name string
	dir  string

	mu         sync.Mutex
	exceptions []string
}

// visitor opens a tab for a new visitor: a new browser context, so its own
// localStorage and sessionStorage.
func (b *browser) visitor(name string) *tab {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(shared.ctx, chromedp.WithNewBrowserContext())
	b.t.Cleanup(cancel)
	tb := &tab{t: b.t, ctx: ctx, name: name, dir: b.dir}
	// Console subscribes at once, so it sees the page from its first line.
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			if m.IsException() {
				tb.mu.Lock()
				tb.exceptions = append(tb.exceptions, m.Text)
				tb.mu.Unlock()
			}
		}
	}()
	// Every uncaught exception of the page fails the test.
	b.t.Cleanup(func() {
		tb.mu.Lock()
		defer tb.mu.Unlock()
		for _, e := range tb.exceptions {
			b.t.Errorf("%s: uncaught exception in the page: %s", name, e)
		}
	})
	return tb
}

// do runs actions, and on failure saves a screenshot and fails the test.
func (tb *tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tb.fail(what, err)
	}
}

func (tb *tab) fail(what string, err error) {
	tb.t.Helper()
	path := tb.shot("failed")
	body, _ := tb.eval(`document.body ? document.body.innerText : ''`)
	tb.t.Fatalf("%s: %s: %v\nscreenshot: %s\npage text:\n%s", tb.name, what, err, path, body)
}

// eval returns the value of a JavaScript expression as a string.
func (tb *tab) eval(expr string) (string, error) {
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	return chromedp.Run(ctx, chromedp.Evaluate[string](`String(`+expr+`)`))
}

// until waits for a JavaScript condition to hold.
func (tb *tab) until(what, cond string, within time.Duration) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, within+time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool]("!!("+cond+")",
		chromedp.WithPollingInterval(25*time.Millisecond), chromedp.WithPollingTimeout(within)))
	if err != nil {
		tb.fail("waiting until "+what, err)
	}
}

func (tb *tab) text(sel string) string {
	tb.t.Helper()
	s, err := tb.eval(`document.querySelector(` + jsString(sel) + `).textContent`)
	if err != nil {
		tb.fail("read "+sel, err)
	}
	return strings.TrimSpace(s)
}

// shot saves a full-page screenshot and returns its path.
func (tb *tab) shot(label string) string {
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tb.t.Logf("screenshot %s: %v", label, err)
		return ""
	}
	name := regexp.MustCompile(`[^A-Za-z0-9._-]+`).ReplaceAllString(tb.t.Name()+"-"+tb.name+"-"+label, "_") + ".png"
	path := filepath.Join(tb.dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		tb.t.Logf("screenshot %s: %v", label, err)
		return ""
	}
	return path
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// visible is a JavaScript test that the element is shown.
func visible(sel string) string {
	return fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0; })()`, jsString(sel))
}

func available(n int64) string {
	return fmt.Sprintf(`document.querySelector('#avail-count').dataset.available === '%d'`, n)
}

func TestBuyerReservesAndPurchases(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	e := s.createEvent(t, map[string]any{"name": "Örnek Etkinlik", "ticket_quantity": 20, "max_per_visitor": 4})
	b := newBrowser(t)
	p := b.visitor("buyer")

	p.do("open the page", chromedp.Navigate(s.URL+"/"))
	p.until("the event is listed with its availability", visible("#checkout")+" && "+available(20), uiWithin)
	if got := p.text("#ev-title"); got != "Örnek Etkinlik" {
		t.Fatalf("title = %q", got)
	}
	if got := p.text(`label[for="amount"]`); got != "Number of tickets" {
		t.Fatalf("amount label = %q", got)
	}

	// Keyboard only: choose 2 and press Enter on the Reserve button.
	p.do("reserve 2 with the keyboard",
		chromedp.SetValue(chromedp.ID("amount"), "2"),
		chromedp.Focus(chromedp.ID("reserve")),
		chromedp.KeyEvent("\r"),
	)
	p.until("the hold is shown", visible("#hold"), uiWithin)
	p.until("the countdown runs", `/^[0-9]+:[0-5][0-9]$/.test(document.querySelector('#countdown').textContent)`, uiWithin)
	p.until("focus moves to the hold", `document.activeElement && document.activeElement.id === 'hold-title'`, uiWithin)
	p.until("availability drops to 18", available(18), uiWithin)
	if got := p.text("#hold-amount"); got != "2 tickets" {
		t.Fatalf("hold amount = %q", got)
	}
	first := p.text("#countdown")
	p.until("the countdown moves", `document.querySelector('#countdown').textContent !== `+jsString(first), 3*time.Second)
	p.shot("held")

	// A reload keeps the hold.
	id := p.text("#hold-id")
	p.do("reload", chromedp.Reload())
	p.until("the hold is back after a reload", visible("#hold")+` && document.querySelector('#hold-id').textContent === `+jsString(id), uiWithin)

	p.do("purchase", chromedp.Click(chromedp.ID("purchase")))
	p.until("the purchase is confirmed", visible("#done"), uiWithin)
	if got := p.text("#done-text"); !strings.Contains(got, "2 tickets for Örnek Etkinlik") {
		t.Fatalf("confirmation = %q", got)
	}
	if visibleNow, _ := p.eval(visible("#hold")); visibleNow != "false" {
		t.Fatal("the hold is still shown after the purchase")
	}
	p.shot("purchased")
	if st := s.stats(t, e.ID); st.Purchased != 2 || st.Held != 0 || st.Available != 18 {
		t.Fatalf("stats after the purchase: %+v", st)
	}

	p.do("reload", chromedp.Reload())
	p.until("the purchase is still shown after a reload", visible("#done"), uiWithin)
	p.do("buy more", chromedp.Click(chromedp.ID("again")))
	p.until("the reserve form is back", `!document.querySelector('#reserve').disabled && `+visible("#reserve")+` && !`+visible("#done"), uiWithin)
}

func TestBuyerSoldOut(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	s.createEvent(t, map[string]any{"name": "Son Bilet — Kadıköy Sahnesi", "ticket_quantity": 1})
	b := newBrowser(t)

	first := b.visitor("first visitor")
	first.do("open", chromedp.Navigate(s.URL+"/"))
	first.until("one ticket left", available(1), uiWithin)
	first.do("reserve", chromedp.Click(chromedp.ID("reserve")))
	first.until("the hold is shown", visible("#hold"), uiWithin)

	second := b.visitor("second visitor")
	second.do("open", chromedp.Navigate(s.URL+"/"))
	second.until("sold out is shown", available(0)+` && document.querySelector('#avail-count').textContent === 'Sold out'`, uiWithin)
	second.do("try to reserve", chromedp.Click(chromedp.ID("reserve")))
	second.until("the sold-out message", `document.querySelector('#error').textContent.startsWith('Sold out')`, uiWithin)
	if role, _ := second.eval(`document.querySelector('#error').getAttribute('role')`); role != "alert" {
		t.Fatalf("error region role = %q, want alert", role)
	}
	if visibleNow, _ := second.eval(visible("#hold")); visibleNow != "false" {
		t.Fatal("the second visitor got a hold")
	}
	second.shot("sold-out")
}

func TestBuyerCancelReturnsTickets(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	e := s.createEvent(t, map[string]any{"name": "Dolu Salon", "ticket_quantity": 10})
	b := newBrowser(t)
	p := b.visitor("buyer")
	p.do("open", chromedp.Navigate(s.URL+"/"))
	p.until("ten left", available(10), uiWithin)
	p.do("reserve 3", chromedp.SetValue(chromedp.ID("amount"), "3"), chromedp.Click(chromedp.ID("reserve")))
	p.until("the hold and seven left", visible("#hold")+" && "+available(7), uiWithin)
	p.do("cancel", chromedp.Click(chromedp.ID("cancel")))
	p.until("the tickets are back", available(10)+` && !`+visible("#hold"), uiWithin)
	if got := p.text("#notice"); !strings.Contains(got, "back on sale") {
		t.Fatalf("notice = %q", got)
	}
	if st := s.stats(t, e.ID); st.Available != 10 || st.Held != 0 || st.Cancelled != 3 {
		t.Fatalf("stats after cancelling: %+v", st)
	}
	p.shot("cancelled")
}

func TestBuyerSeesOthersReserve(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	e := s.createEvent(t, map[string]any{"name": "Canlı Sayaç", "ticket_quantity": 50, "max_per_order": 50})
	b := newBrowser(t)
	p := b.visitor("watcher")
	p.do("open", chromedp.Navigate(s.URL+"/"))
	p.until("fifty left, live", available(50)+` && document.querySelector('#live').dataset.state === 'open'`, uiWithin)
	s.reserve(t, e.ID, 5)
	p.until("another client's reserve shows", available(45), liveWithin)
	s.reserve(t, e.ID, 45)
	p.until("sold out shows", available(0), liveWithin)
	if got := p.text("#event-meta-" + fmt.Sprint(e.ID)); !strings.Contains(got, "Sold out") {
		t.Fatalf("event list entry = %q", got)
	}
}

func TestBuyerTooBusyHonorsRetryAfter(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var keys, visitors []string
	busy := 1
	wrap := func(api http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/api/reserve" {
				mu.Lock()
				keys = append(keys, r.Header.Get("Idempotency-Key"))
				visitors = append(visitors, r.Header.Get("Visitor-Token"))
				refuse := busy > 0
				busy--
				mu.Unlock()
				if refuse {
					w.Header().Set("Content-Type", "application/json")
					w.Header().Set("Retry-After", "2")
					w.WriteHeader(http.StatusServiceUnavailable)
					w.Write([]byte(`{"error":{"code":"overloaded","message":"Too many reserves are waiting for this event."}}` + "\n"))
					return
				}
			}
			api.ServeHTTP(w, r)
		})
	}
	s := newServer(t, serverOptions{wrapAPI: wrap})
	s.createEvent(t, map[string]any{"name": "Yoğun Gece", "ticket_quantity": 100})
	b := newBrowser(t)
	p := b.visitor("buyer")
	p.do("open", chromedp.Navigate(s.URL+"/"))
	p.until("loaded", available(100), uiWithin)
	p.do("reserve", chromedp.Click(chromedp.ID("reserve")))
	p.until("the too-busy message", `document.querySelector('#error').textContent.includes('too busy — retry in a moment')`, uiWithin)
	p.until("the button waits", `document.querySelector('#reserve').disabled && document.querySelector('#reserve').textContent.startsWith('Retry in')`, uiWithin)
	p.shot("too-busy")
	p.until("the button is back after Retry-After", `!document.querySelector('#reserve').disabled`, 4*time.Second)
	p.do("retry", chromedp.Click(chromedp.ID("reserve")))
	p.until("the hold is shown", visible("#hold"), uiWithin)
	mu.Lock()
	defer mu.Unlock()
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Fatalf("Idempotency-Keys = %q, want one key reused by the retry", keys)
	}
	// The key is scoped to a visitor: the first attempt must already
	// carry the token the retry sends, or the retry would be a new
	// visitor holding tickets a second time.
	if len(visitors) != 2 || visitors[0] == "" || visitors[0] != visitors[1] {
		t.Fatalf("Visitor-Tokens = %q, want the same token on the first attempt and its retry", visitors)
	}
	p.until("the hold belongs to that visitor", fmt.Sprintf(`localStorage.getItem('ticketrush.visitor') === %q`, visitors[0]), uiWithin)
}

func TestBuyerExplainsRules(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	later := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	s.createEvent(t, map[string]any{"name": "Yarın Açılıyor", "ticket_quantity": 10, "sale_starts_at": later})
	s.createEvent(t, map[string]any{"name": "Kişi Başı İki", "ticket_quantity": 10, "max_per_visitor": 2})
	b := newBrowser(t)
	p := b.visitor("buyer")
	p.do("open", chromedp.Navigate(s.URL+"/"))

	// A sale that has not begun says when it opens, and waits.
	p.until("the list", `document.querySelectorAll('#events label').length === 2`, uiWithin)
	p.do("pick the event not yet on sale", chromedp.Click(chromedp.CSS(`#events label:nth-of-type(2)`)))
	p.until("the sale start is shown", `document.querySelector('#ev-title').textContent === 'Yarın Açılıyor' && `+visible("#ev-sale")+` && document.querySelector('#reserve').disabled && document.querySelector('#reserve').textContent.startsWith('Opens in')`, uiWithin)
	p.shot("not-started")

	// The limit per visitor is stated, and explained when exceeded. The
	// keyboard moves between events as between radio buttons.
	p.do("pick the limited event with the keyboard", chromedp.Focus(chromedp.CSS(`#events input[type=radio]:checked`)), chromedp.KeyEvent(kb.ArrowUp))
	p.until("the limit is stated", `document.querySelector('#ev-title').textContent === 'Kişi Başı İki' && document.querySelector('#amount-hint').textContent.includes('Up to 2 tickets per visitor')`, uiWithin)
	if n, _ := p.eval(`document.querySelector('#amount').options.length`); n != "2" {
		t.Fatalf("amount choices = %s, want 2", n)
	}
	p.do("reserve 2", chromedp.SetValue(chromedp.ID("amount"), "2"), chromedp.Click(chromedp.ID("reserve")))
	p.until("held", visible("#hold"), uiWithin)
	p.do("buy", chromedp.Click(chromedp.ID("purchase")))
	p.until("bought", visible("#done"), uiWithin)
	p.do("buy more", chromedp.Click(chromedp.ID("again")))
	p.until("reserve enabled", `!document.querySelector('#reserve').disabled`, uiWithin)
	p.do("reserve 1 more", chromedp.SetValue(chromedp.ID("amount"), "1"), chromedp.Click(chromedp.ID("reserve")))
	p.until("the limit message", `document.querySelector('#error').textContent.includes('at most 2 tickets')`, uiWithin)
}

func TestBuyerPhoneWidth(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	s.createEvent(t, map[string]any{"name": "Çok Uzun Bir Etkinlik Adı: İstanbul Büyükşehir Belediyesi Yaz Konserleri Şenliği", "ticket_quantity": 2000})
	b := newBrowser(t)
	p := b.visitor("phone")
	p.do("open at phone width",
		chromedp.EmulateViewport(375, 740, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(s.URL+"/"))
	p.until("loaded", available(2000), uiWithin)
	p.do("reserve", chromedp.Click(chromedp.ID("reserve")))
	p.until("held", visible("#hold"), uiWithin)
	p.until("nothing wider than the screen", `document.documentElement.scrollWidth <= window.innerWidth`, uiWithin)
	p.shot("phone")
}

func TestAdminDashboard(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	s.createEvent(t, map[string]any{"name": "Örnek Etkinlik", "ticket_quantity": 2000})
	b := newBrowser(t)
	p := b.visitor("organiser")
	p.do("open", chromedp.Navigate(s.URL+"/admin"))
	p.until("the sign-in form", visible("#login"), uiWithin)

	p.do("wrong token", chromedp.SendKeys(chromedp.ID("token"), "not-the-token"), chromedp.Click(chromedp.ID("login-btn")))
	p.until("the token is refused", `document.querySelector('#error').textContent.includes('refused')`, uiWithin)

	p.do("right token",
		chromedp.Evaluate[chromedp.Void](`document.querySelector('#token').value = ''`),
		chromedp.SendKeys(chromedp.ID("token"), adminToken),
		chromedp.KeyEvent("\r"))
	p.until("the dashboard", visible("#dash")+` && `+visible("#create"), uiWithin)

	p.do("create an event",
		chromedp.SendKeys(chromedp.ID("name"), "Yeni Konser — İzmir Fuarı"),
		chromedp.SendKeys(chromedp.ID("ticket_quantity"), "30"),
		chromedp.SendKeys(chromedp.ID("max_per_visitor"), "4"),
		chromedp.Click(chromedp.ID("create-btn")))
	p.until("the new event with its counts",
		`[...document.querySelectorAll('.dash-event')].some(c => c.querySelector('h3').textContent === 'Yeni Konser — İzmir Fuarı' && c.querySelector('dd[data-k="available"]').dataset.value === '30')`,
		3*time.Second)
	if got := p.text("#notice"); !strings.Contains(got, "Created “Yeni Konser — İzmir Fuarı”") {
		t.Fatalf("notice = %q", got)
	}
	var events []struct {
		ID   int64  `json:"id"`
		Name string `json:"name"`
	}
	s.call(t, http.MethodGet, "/api/events", nil, nil, http.StatusOK, &events)
	if len(events) != 2 || events[0].Name != "Yeni Konser — İzmir Fuarı" {
		t.Fatalf("events after creating: %+v", events)
	}
	id := events[0].ID
	card := fmt.Sprintf(`document.querySelector('#dash-event-%d')`, id)

	s.reserve(t, id, 3)
	r := s.reserve(t, id, 2)
	s.call(t, http.MethodPost, "/api/purchase", map[string]string{"Visitor-Token": r.UserUID}, map[string]any{"reservation_id": r.ID}, http.StatusOK, nil)
	p.until("the counts follow",
		card+`.querySelector('dd[data-k="available"]').dataset.value === '25' && `+
			card+`.querySelector('dd[data-k="held"]').dataset.value === '3' && `+
			card+`.querySelector('dd[data-k="purchased"]').dataset.value === '2'`,
		3*time.Second)
	p.until("the chart draws every band", card+`.querySelectorAll('svg.chart path').length >= 3 && `+card+`.querySelector('svg.chart title').textContent.includes('3 held')`, 3*time.Second)
	p.shot("dashboard")

	// The token lives in this tab's session: a reload stays signed in.
	p.do("reload", chromedp.Reload())
	p.until("still signed in", visible("#dash")+` && !`+visible("#login"), uiWithin)
}

// A server without an admin token says so on the dashboard, instead of a
// sign-in form that could only ever answer "refused".
func TestAdminDashboardSaysAdminIsOff(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{noAdmin: true})
	b := newBrowser(t)
	p := b.visitor("organiser")
	p.do("open", chromedp.Navigate(s.URL+"/admin"))
	p.until("the admin-off message", `document.querySelector('#error').textContent.includes('Admin is switched off on this server')`, uiWithin)
	p.until("no sign-in possible", `document.querySelector('#login-btn').disabled && document.querySelector('#token').disabled`, uiWithin)
	if got := p.text("#error"); !strings.Contains(got, "--admin-token") {
		t.Fatalf("message = %q, want it to name --admin-token", got)
	}
	p.shot("admin-disabled")
}
