package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestScreenshots renders both pages during a small simulated rush, checks
// what they show, and saves a 1000×700 screenshot of each as buyer.png and
// admin.png in the artifacts directory, and also in
// TICKETRUSH_SCREENSHOTS_DIR when set. The README's images come from
// there; from the repository's root:
//
//	TICKETRUSH_SCREENSHOTS_DIR=$PWD/docs go test ./web -run TestScreenshots -count=1
func TestScreenshots(t *testing.T) {
	t.Parallel()
	s := newServer(t, serverOptions{})
	tomorrow := time.Now().Add(24 * time.Hour).Truncate(time.Hour).UTC().Format(time.RFC3339)
	s.createEvent(t, map[string]any{"name": "Tarkan — Yaz Konseri", "ticket_quantity": 3000, "sale_starts_at": tomorrow})
	sezen := s.createEvent(t, map[string]any{"name": "Sezen Aksu — Harbiye Açıkhava", "ticket_quantity": 800, "max_per_visitor": 4, "hold_seconds": 3})
	demo := s.createEvent(t, map[string]any{"name": "Örnek Etkinlik", "ticket_quantity": 2000})

	// Visitors reserve, most buy, some cancel, some walk away (their short
	// holds on the second event expire and are swept). A first wave runs
	// before the buyer arrives, the rush while the organiser watches.
	ctx, stop := context.WithCancel(t.Context())
	defer stop()
	for i := range 60 {
		visit(ctx, s, i, demo.ID, sezen.ID)
	}

	b := newBrowser(t)
	buyer := b.visitor("buyer")
	buyer.do("open the buyer page", chromedp.EmulateViewport(1000, 700), chromedp.Navigate(s.URL+"/"))
	buyer.until("the demo event, live", `document.querySelector('#ev-title').textContent === 'Örnek Etkinlik' && document.querySelector('#live').dataset.state === 'open'`, uiWithin)
	buyer.do("reserve 2", chromedp.SetValue(chromedp.ID("amount"), "2"), chromedp.Click(chromedp.ID("reserve")))
	buyer.until("the hold", visible("#hold"), uiWithin)
	buyer.until("the numbers moved", `Number(document.querySelector('#avail-count').dataset.available) < 1990`, uiWithin)
	buyer.do("settle", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	saveViewport(t, buyer, "buyer.png")

	admin := b.visitor("organiser")
	admin.do("open the dashboard", chromedp.EmulateViewport(1000, 700), chromedp.Navigate(s.URL+"/admin"))
	admin.do("sign in", chromedp.SendKeys(chromedp.ID("token"), adminToken), chromedp.KeyEvent("\r"))
	card := fmt.Sprintf(`document.querySelector('#dash-event-%d')`, demo.ID)
	admin.until("the dashboard", visible("#dash"), uiWithin)
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			for i := 0; ctx.Err() == nil; i++ {
				visit(ctx, s, i, demo.ID, sezen.ID)
				select {
				case <-ctx.Done():
				case <-time.After(40 * time.Millisecond):
				}
			}
		})
	}
	defer func() {
		stop()
		wg.Wait()
	}()
	// Some seconds of history make a chart worth looking at.
	time.Sleep(5 * time.Second)
	admin.until("counts of the rush", card+`.querySelector('dd[data-k="purchased"]').dataset.value !== '0' && `+card+`.querySelectorAll('svg.chart path').length >= 3`, uiWithin)
	admin.do("settle", chromedp.Evaluate[chromedp.Void](`document.activeElement && document.activeElement.blur()`))
	saveViewport(t, admin, "admin.png")
}

// visit plays the i-th visitor of the rush: two in three go to the demo
// event, the others to the event with short holds.
func visit(ctx context.Context, s *server, i int, demo, short int64) {
	event := demo
	if i%3 == 2 {
		event = short
	}
	client := s.Client()
	r, ok := reserveQuietly(ctx, client, s.URL, event, int64(1+rand.IntN(6)))
	if ok {
		switch p := rand.IntN(10); {
		case p < 6:
			send(ctx, client, http.MethodPost, s.URL+"/api/purchase", r.token, fmt.Sprintf(`{"reservation_id":%d}`, r.id))
		case p < 7:
			send(ctx, client, http.MethodDelete, fmt.Sprintf("%s/api/reservations/%d", s.URL, r.id), r.token, "")
		}
	}
	if i%10 == 0 {
		s.store.ReleaseExpired(ctx, 500)
	}
}

type held struct {
	id    int64
	token string
}

func reserveQuietly(ctx context.Context, c *http.Client, base string, event, amount int64) (held, bool) {
	res, ok := send(ctx, c, http.MethodPost, base+"/api/reserve", "", fmt.Sprintf(`{"event_id":%d,"amount":%d}`, event, amount))
	if !ok || res.status != http.StatusCreated {
		return held{}, false
	}
	return held{id: res.id, token: res.token}, true
}

type answer struct {
	status int
	id     int64
	token  string
}

// send makes one request of the rush; failures (the rush outliving the
// test's server) are ignored.
func send(ctx context.Context, c *http.Client, method, url, token, body string) (answer, bool) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return answer{}, false
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Visitor-Token", token)
	}
	res, err := c.Do(req)
	if err != nil {
		return answer{}, false
	}
	defer res.Body.Close()
	var out struct {
		Data struct {
			ID      int64  `json:"id"`
			UserUID string `json:"user_uid"`
		} `json:"data"`
	}
	json.NewDecoder(res.Body).Decode(&out)
	return answer{status: res.StatusCode, id: out.Data.ID, token: out.Data.UserUID}, true
}

// saveViewport saves what the viewport shows as name, in the artifacts
// directory and in TICKETRUSH_SCREENSHOTS_DIR when set.
func saveViewport(t *testing.T, tb *tab, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, stepTimeout)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		tb.fail("screenshot "+name, err)
	}
	dirs := []string{tb.dir}
	if d := os.Getenv("TICKETRUSH_SCREENSHOTS_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	for _, d := range dirs {
		path := filepath.Join(d, name)
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d bytes)", path, len(png))
	}
}
