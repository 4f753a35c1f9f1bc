package httpapi

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/sqlite"
)

// crossSiteServer is a server on a fresh SQLite file with one event.
func crossSiteServer(t *testing.T, allowed ...string) (*Server, int64) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), t.TempDir()+"/x.db", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	e, err := st.CreateEvent(t.Context(), ticketrush.NewEvent{Name: "Örnek Etkinlik", TicketQuantity: 100, HoldSeconds: 300})
	if err != nil {
		t.Fatal(err)
	}
	origins, err := ParseOrigins(strings.Join(allowed, ","))
	if err != nil {
		t.Fatal(err)
	}
	return New(Config{Store: st, AdminToken: adminToken, AllowedOrigins: origins, Logger: quietLogger()}), e.ID
}

// TestCrossSiteRequests: a browser request from another site may read
// public data but neither change state nor reach admin, unless its origin
// is allowed; non-browser clients and the server's own pages are not
// affected.
func TestCrossSiteRequests(t *testing.T) {
	srv, id := crossSiteServer(t, "https://shop.example.com")
	reserve := `{"event_id":` + itoa(id) + `,"amount":1}`
	for _, c := range []struct {
		name, method, path, body string
		header                   map[string]string
		status                   int
		code                     string
	}{
		{"NoCorsFetchFromAnotherSite", "POST", "/api/reserve", reserve, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 403, ticketrush.ECrossSiteRequest},
		{"OriginOnly", "POST", "/api/reserve", reserve, map[string]string{"Origin": "https://evil.example"}, 403, ticketrush.ECrossSiteRequest},
		{"SecFetchSiteOnly", "POST", "/api/reserve", reserve, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, ticketrush.ECrossSiteRequest},
		{"NullOrigin", "POST", "/api/reserve", reserve, map[string]string{"Origin": "null"}, 403, ticketrush.ECrossSiteRequest},
		{"SameSiteOtherOrigin", "POST", "/api/reserve", reserve, map[string]string{"Origin": "https://other.ticketrush.test", "Sec-Fetch-Site": "same-site"}, 403, ticketrush.ECrossSiteRequest},
		{"OtherPortIsAnotherOrigin", "POST", "/api/reserve", reserve, map[string]string{"Origin": "http://ticketrush.test:8081"}, 403, ticketrush.ECrossSiteRequest},
		{"CancelCrossSite", "DELETE", "/api/reservations/1", "", map[string]string{"Visitor-Token": tokenA, "Sec-Fetch-Site": "cross-site"}, 403, ticketrush.ECrossSiteRequest},
		{"AdminReadCrossSite", "GET", "/api/admin/events/" + itoa(id) + "/stats", "", map[string]string{"Authorization": "Bearer " + adminToken, "Sec-Fetch-Site": "cross-site"}, 403, ticketrush.ECrossSiteRequest},
		{"AdminCreateCrossSite", "POST", "/api/admin/events", `{"name":"x","ticket_quantity":1}`, map[string]string{"Authorization": "Bearer " + adminToken, "Origin": "https://evil.example"}, 403, ticketrush.ECrossSiteRequest},

		{"PublicReadCrossSite", "GET", "/api/events", "", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, 200, ""},
		{"SameOriginPage", "POST", "/api/reserve", reserve, map[string]string{"Origin": "http://ticketrush.test", "Sec-Fetch-Site": "same-origin"}, 201, ""},
		{"SameOriginUpperCase", "POST", "/api/reserve", reserve, map[string]string{"Origin": "HTTP://TicketRush.test"}, 201, ""},
		{"UserTyped", "GET", "/api/admin/events/" + itoa(id) + "/stats", "", map[string]string{"Authorization": "Bearer " + adminToken, "Sec-Fetch-Site": "none"}, 200, ""},
		{"NotABrowser", "POST", "/api/reserve", reserve, nil, 201, ""},
		{"AllowedOrigin", "POST", "/api/reserve", reserve, map[string]string{"Origin": "https://shop.example.com", "Sec-Fetch-Site": "cross-site"}, 201, ""},
		{"AllowedOriginAdmin", "GET", "/api/admin/events/" + itoa(id) + "/stats", "", map[string]string{"Authorization": "Bearer " + adminToken, "Origin": "https://SHOP.example.com:443", "Sec-Fetch-Site": "cross-site"}, 200, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var body *strings.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			} else {
				body = strings.NewReader("")
			}
			r := httptest.NewRequestWithContext(t.Context(), c.method, "http://ticketrush.test"+c.path, body)
			if c.body != "" {
				r.Header.Set("Content-Type", "application/json")
			}
			for k, v := range c.header {
				r.Header.Set(k, v)
			}
			w := httptest.NewRecorder()
			srv.ServeHTTP(w, r)
			checkResponse(t, r, w.Code, w.Header(), w.Body.Bytes())
			if w.Code != c.status {
				t.Fatalf("status %d, want %d: %s", w.Code, c.status, w.Body)
			}
			if c.code != "" && !strings.Contains(w.Body.String(), `"code":"`+c.code+`"`) {
				t.Fatalf("body %s, want code %s", w.Body, c.code)
			}
		})
	}
}

// TestBodyNeedsJSONType: every state-changing request with a body needs
// Content-Type: application/json, also on a route that reads no body
// (cancel), and changes nothing without it.
func TestBodyNeedsJSONType(t *testing.T) {
	srv, id := crossSiteServer(t)
	res, err := srv.store.Reserve(t.Context(), ticketrush.ReserveRequest{EventID: id, Amount: 2, VisitorToken: tokenA})
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range []string{"<absent>", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"} {
		r := httptest.NewRequestWithContext(t.Context(), "DELETE", "http://ticketrush.test/api/reservations/"+itoa(res.ID), strings.NewReader("x=1"))
		r.Header.Set("Visitor-Token", tokenA)
		if ct != "<absent>" {
			r.Header.Set("Content-Type", ct)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		checkResponse(t, r, w.Code, w.Header(), w.Body.Bytes())
		if w.Code != http.StatusUnsupportedMediaType || !strings.Contains(w.Body.String(), `"code":"unsupported_media_type"`) {
			t.Fatalf("DELETE with a %s body: %d %s, want 415", ct, w.Code, w.Body)
		}
	}
	got, err := srv.store.Reservation(t.Context(), res.ID, tokenA)
	if err != nil || got.Status != ticketrush.StatusReserved {
		t.Fatalf("after refused cancels: %+v, %v; want it still reserved", got, err)
	}
	// Without a body a cancel needs no type.
	r := httptest.NewRequestWithContext(t.Context(), "DELETE", "http://ticketrush.test/api/reservations/"+itoa(res.ID), nil)
	r.Header.Set("Visitor-Token", tokenA)
	w := httptest.NewRecorder()
	srv.ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Fatalf("cancel without a body: %d %s", w.Code, w.Body)
	}
}

// An allowed origin gets what its browser needs to call the API: a
// preflight answer and CORS headers. Others get neither.
func TestAllowedOriginCORS(t *testing.T) {
	srv, _ := crossSiteServer(t, "https://shop.example.com")
	pre := func(origin string) *httptest.ResponseRecorder {
		r := httptest.NewRequestWithContext(t.Context(), "OPTIONS", "http://ticketrush.test/api/reserve", nil)
		r.Header.Set("Origin", origin)
		r.Header.Set("Access-Control-Request-Method", "POST")
		r.Header.Set("Access-Control-Request-Headers", "content-type, visitor-token, idempotency-key")
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		return w
	}
	w := pre("https://shop.example.com")
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "https://shop.example.com" ||
		!strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "Idempotency-Key") {
		t.Fatalf("preflight from the allowed origin: %d %v", w.Code, w.Header())
	}
	if w := pre("https://evil.example"); w.Code == http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin: %d %v", w.Code, w.Header())
	}
	r := httptest.NewRequestWithContext(t.Context(), "GET", "http://ticketrush.test/api/events", nil)
	r.Header.Set("Origin", "https://shop.example.com")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, r)
	if rec.Header().Get("Access-Control-Allow-Origin") != "https://shop.example.com" || !strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), "Visitor-Token") {
		t.Fatalf("answer to the allowed origin: %v", rec.Header())
	}
}

func TestParseOrigins(t *testing.T) {
	got, err := ParseOrigins(" https://Shop.Example.com:443 , http://localhost:3000,,http://a.test:80/")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"https://shop.example.com", "http://localhost:3000", "http://a.test"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("ParseOrigins = %q, want %q", got, want)
	}
	for _, bad := range []string{"shop.example.com", "https://x.test/path", "ftp://x.test", "https://user@x.test", "*"} {
		if _, err := ParseOrigins(bad); err == nil {
			t.Errorf("ParseOrigins(%q) accepted", bad)
		}
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
