package httpapi

import (
	"net/http/httptest"
	"strings"
	"testing"
)

// TestAdminDisabled: a server started without an admin token says that
// admin is switched off (403 admin_disabled, naming the flag), whatever
// token a client sends, instead of calling the token wrong.
func TestAdminDisabled(t *testing.T) {
	srv, id := crossSiteServer(t)
	off := New(Config{Store: srv.store, Logger: quietLogger()})
	for _, c := range []struct{ method, path, body, auth string }{
		{"POST", "/api/admin/events", `{"name":"x","ticket_quantity":1}`, ""},
		{"POST", "/api/admin/events", `{"name":"x","ticket_quantity":1}`, "Bearer anything"},
		{"GET", "/api/admin/events/" + itoa(id) + "/stats", "", ""},
		{"GET", "/api/admin/events/" + itoa(id) + "/stats", "", "Bearer " + adminToken},
	} {
		r := httptest.NewRequestWithContext(t.Context(), c.method, "http://ticketrush.test"+c.path, strings.NewReader(c.body))
		if c.body != "" {
			r.Header.Set("Content-Type", "application/json")
		}
		if c.auth != "" {
			r.Header.Set("Authorization", c.auth)
		}
		w := httptest.NewRecorder()
		off.ServeHTTP(w, r)
		checkResponse(t, r, w.Code, w.Header(), w.Body.Bytes())
		if w.Code != 403 || !strings.Contains(w.Body.String(), `"code":"admin_disabled"`) || !strings.Contains(w.Body.String(), "--admin-token") {
			t.Errorf("%s %s (auth %q): %d %s; want 403 admin_disabled naming --admin-token", c.method, c.path, c.auth, w.Code, w.Body)
		}
	}
}
