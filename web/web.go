// Package web is the part of ticketrush a person sees: the buyer page at /,
// the organiser's dashboard at /admin, their assets, and the live
// availability stream both pages read. The pages are plain HTML, CSS and
// JavaScript embedded in the binary: no framework, no CDN, no build step.
// They talk to the JSON API of package httpapi like any other client.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/ticketrush/ticketrush"
)

//go:embed static
var static embed.FS

// Defaults of Config.
const (
	// DefaultInterval gives at most ten availability updates a second per
	// event: quick enough to look live, few enough that a rush of buyers
	// costs the database ten small reads a second per event and process.
	DefaultInterval = 100 * time.Millisecond
	// DefaultHeartbeat keeps idle streams open through proxies that close
	// connections silent for longer (commonly 30 to 60 seconds).
	DefaultHeartbeat = 15 * time.Second
	// DefaultMaxStreams bounds the open streams of one process, so a flood
	// of connections meets a 503 before it exhausts file descriptors.
	DefaultMaxStreams = 10000
	// DefaultMaxStreamsPerIP bounds the open streams of one client
	// address: a browser tab holds one, so this leaves room for a family
	// or an office behind one NAT, yet one client cannot take the
	// process's whole DefaultMaxStreams.
	DefaultMaxStreamsPerIP = 64
)

// Routes are the method and path patterns Handler serves, in the syntax of
// http.ServeMux; a server mounts Handler on each and sends everything else
// to the API.
var Routes = []string{
	"GET /{$}",
	"GET /admin",
	"GET /static/",
	"GET /api/events/{id}/stream",
}

// Config is what Web needs. Store is required; every other field has a
// default.
type Config struct {
	Store ticketrush.Store
	// Logger gets stream failures; nil means slog.Default().
	Logger *slog.Logger
	// Interval is how often an event with open streams is read from the
	// Store; 0 means DefaultInterval.
	Interval time.Duration
	// Heartbeat is how often a stream gets a comment line; 0 means
	// DefaultHeartbeat.
	Heartbeat time.Duration
	// MaxStreams caps the streams open at once in this process; 0 means
	// DefaultMaxStreams.
	MaxStreams int
	// MaxStreamsPerIP caps the streams open at once from one client
	// address (as ClientIP names it); over it a stream is answered 429
	// too_many_streams. 0 means DefaultMaxStreamsPerIP, below 0 no cap.
	MaxStreamsPerIP int
	// ClientIP names the client of a request; nil means the connection's
	// peer address. Behind a reverse proxy pass the same function the
	// rate limit uses, or every visitor counts as the proxy.
	ClientIP func(*http.Request) string
}

// Web serves the pages, their assets and the availability stream.
type Web struct {
	log       *slog.Logger
	broker    *broker
	heartbeat time.Duration
	assets    map[string]*asset // by path under static/
	mux       *http.ServeMux
	clientIP  func(*http.Request) string
	noFlush   sync.Once // logs once that a writer cannot flush
}

// asset is an embedded file with what its answers need.
type asset struct {
	name  string
	body  []byte
	etag  string
	ctype string
}

// New returns a Web for cfg. Call Close when the server stops, before
// waiting for connections to end: streams never end on their own.
func New(cfg Config) *Web {
	w := &Web{
		log:       cfg.Logger,
		heartbeat: cfg.Heartbeat,
		mux:       http.NewServeMux(),
	}
	if w.log == nil {
		w.log = slog.Default()
	}
	if w.heartbeat <= 0 {
		w.heartbeat = DefaultHeartbeat
	}
	interval := cfg.Interval
	if interval <= 0 {
		interval = DefaultInterval
	}
	maxStreams := cfg.MaxStreams
	if maxStreams <= 0 {
		maxStreams = DefaultMaxStreams
	}
	perIP := cfg.MaxStreamsPerIP
	if perIP == 0 {
		perIP = DefaultMaxStreamsPerIP
	}
	w.clientIP = cfg.ClientIP
	if w.clientIP == nil {
		w.clientIP = peerIP
	}
	w.broker = newBroker(cfg.Store, interval, maxStreams, perIP, w.log)
	w.assets = loadAssets()

	w.mux.HandleFunc("GET /{$}", w.page("index.html"))
	w.mux.HandleFunc("GET /admin", w.page("admin.html"))
	w.mux.HandleFunc("GET /static/{file...}", w.staticFile)
	w.mux.HandleFunc("GET /api/events/{id}/stream", w.stream)
	return w
}

// peerIP is the connection's peer address without its port.
func peerIP(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// Handler returns the handler of the routes in Routes.
func (w *Web) Handler() http.Handler { return w.mux }

// Close ends every stream and stops the pollers. New streams are refused
// with 503 from then on, so that a graceful shutdown is not held up by
// connections that would otherwise stay open for ever.
func (w *Web) Close() { w.broker.close() }

// loadAssets reads the embedded files once, with a content hash as ETag:
// the files only change with the binary, and a browser revalidates them
// cheaply instead of running an old script against a new API.
func loadAssets() map[string]*asset {
	m := map[string]*asset{}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype := mime.TypeByExtension(path.Ext(p))
		if ctype == "" {
			ctype = "application/octet-stream"
		}
		name := strings.TrimPrefix(p, "static/")
		m[name] = &asset{name: name, body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, ctype: ctype}
		return nil
	})
	if err != nil {
		// The files are compiled in: failing to read them is a broken build.
		panic(fmt.Sprintf("web: read embedded assets: %v", err))
	}
	return m
}

// contentSecurityPolicy allows only this origin's own scripts, styles and
// connections: the pages need nothing else, so an injected script or a
// hostile event name rendered by mistake could not load or send anything.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

func (w *Web) page(name string) http.HandlerFunc {
	a := w.assets[name]
	if a == nil {
		panic("web: missing embedded page " + name)
	}
	return func(rw http.ResponseWriter, r *http.Request) {
		h := rw.Header()
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		w.serveAsset(rw, r, a)
	}
}

func (w *Web) staticFile(rw http.ResponseWriter, r *http.Request) {
	a := w.assets[r.PathValue("file")]
	if a == nil || strings.HasSuffix(a.name, ".html") {
		http.NotFound(rw, r)
		return
	}
	w.serveAsset(rw, r, a)
}

// serveAsset answers with a, or 304 when the browser's copy is current.
func (w *Web) serveAsset(rw http.ResponseWriter, r *http.Request, a *asset) {
	h := rw.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("ETag", a.etag)
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(rw, r, a.name, time.Time{}, bytes.NewReader(a.body))
}
