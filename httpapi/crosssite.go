package httpapi

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/ticketrush/ticketrush"
)

// A browser sends cookies-free but IP-bearing requests to any site a page
// asks it to. The API holds no cookies, yet a hostile page could still make
// every visitor's browser reserve tickets from the visitor's own address
// (past any per-IP limit), or probe admin routes. So a request a browser
// marks as cross-site is refused on every state-changing method and on the
// admin routes, unless its origin is one the operator allowed. Safe reads
// of public data stay open to everyone.
//
// A browser says where a request comes from in two ways: Sec-Fetch-Site
// (all current browsers) and Origin (sent on every non-GET request, and on
// cross-origin GETs made by fetch). Either one saying "elsewhere" is
// enough. Clients that are not browsers send neither and are not affected.

// ParseOrigins reads a comma-separated list of origins such as
// "https://tickets.example.com, http://localhost:3000" into their canonical
// form (lower-case scheme and host, no default port). An origin is a
// scheme, a host and an optional port: no path, query or user.
func ParseOrigins(s string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		o, ok := canonicalOrigin(f)
		if !ok {
			return nil, fmt.Errorf("%q is not an origin: want scheme://host[:port], e.g. https://tickets.example.com", f)
		}
		out = append(out, o)
	}
	return out, nil
}

// canonicalOrigin returns s as scheme://host[:port] with a default port
// dropped, and whether s is an origin at all.
func canonicalOrigin(s string) (string, bool) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false
	}
	return u.Scheme + "://" + canonicalHost(u.Host, u.Scheme), true
}

// canonicalHost lower-cases host and drops the default port of scheme; with
// scheme "" it drops either default port.
func canonicalHost(host, scheme string) string {
	host = strings.ToLower(host)
	if (scheme != "https" && strings.HasSuffix(host, ":80")) || (scheme != "http" && strings.HasSuffix(host, ":443")) {
		host = host[:strings.LastIndexByte(host, ':')]
	}
	return host
}

// isSafeMethod reports whether m only reads.
func isSafeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead
}

// isAdminPath reports whether p is under the admin API.
func isAdminPath(p string) bool {
	return p == "/api/admin" || strings.HasPrefix(p, "/api/admin/")
}

// allowedOrigin reports whether o (canonical) is configured as allowed.
func (s *Server) allowedOrigin(o string) bool {
	for _, a := range s.allowedOrigins {
		if a == o {
			return true
		}
	}
	return false
}

// crossSite returns the error for a cross-site browser request that is not
// allowed to reach r's route, or nil.
func (s *Server) crossSite(r *http.Request) error {
	if isSafeMethod(r.Method) && !isAdminPath(r.URL.Path) {
		return nil
	}
	origins := r.Header.Values("Origin")
	fetchSite := r.Header.Get("Sec-Fetch-Site")
	if len(origins) == 0 && fetchSite != "cross-site" {
		return nil // not a browser, or a same-origin navigation
	}
	if len(origins) == 1 {
		if o, ok := canonicalOrigin(origins[0]); ok {
			if s.allowedOrigin(o) {
				return nil
			}
			_, host, _ := strings.Cut(o, "://")
			if fetchSite != "cross-site" && host == canonicalHost(r.Host, "") {
				return nil // the server's own pages
			}
		}
	}
	return errCrossSite
}

var errCrossSite = ticketrush.Errorf(ticketrush.ECrossSiteRequest,
	"Cross-site requests are refused: this request came from a page on another site. An operator can allow a site with --allowed-origins.")

// requireJSONBody refuses a state-changing request that carries a body
// without Content-Type: application/json, whatever route it is for (a
// handler that ignores its body included): such a body is what a hostile
// page can make a browser send with no CORS preflight.
func requireJSONBody(r *http.Request) error {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return nil
	}
	if r.ContentLength == 0 && len(r.TransferEncoding) == 0 {
		return nil // no body
	}
	if ct := r.Header.Values("Content-Type"); len(ct) == 1 && jsonMediaType(ct[0]) {
		return nil
	}
	return errNotJSON
}

var errNotJSON = ticketrush.Errorf(ticketrush.EUnsupportedMedia, "The Content-Type must be application/json: send the header Content-Type: application/json with the body.")

// jsonMediaType reports whether v is a JSON type (application/json, or
// application/merge-patch+json, which PATCH takes), with at most a charset
// parameter of utf-8. Neither is a type a page may send cross-site without
// a CORS preflight. Each handler still checks the type it reads.
func jsonMediaType(v string) bool {
	if v == "application/json" {
		return true
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil || (mt != "application/json" && mt != "application/merge-patch+json") {
		return false
	}
	for k, p := range params {
		if k != "charset" || !strings.EqualFold(p, "utf-8") {
			return false
		}
	}
	return true
}

// preflight answers a CORS preflight (OPTIONS with
// Access-Control-Request-Method) from an allowed origin and reports whether
// it did. Preflights from other origins fall through to the router, whose
// 405 a browser reads as "not allowed".
func (s *Server) preflight(w http.ResponseWriter, r *http.Request) bool {
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	o, ok := canonicalOrigin(r.Header.Get("Origin"))
	if !ok || !s.allowedOrigin(o) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
	h.Set("Access-Control-Allow-Methods", "GET, POST, PATCH, DELETE")
	h.Set("Access-Control-Allow-Headers", "Content-Type, Visitor-Token, Idempotency-Key, Authorization, Admission-Pass")
	h.Set("Access-Control-Max-Age", "600")
	h.Add("Vary", "Origin")
	w.WriteHeader(http.StatusNoContent)
	return true
}

// corsHeaders lets the page of an allowed origin read an answer and the
// headers it needs.
func (s *Server) corsHeaders(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	if o, ok := canonicalOrigin(origin); ok && s.allowedOrigin(o) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Expose-Headers", "Visitor-Token, Retry-After")
		h.Add("Vary", "Origin")
	}
}
