package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ticketrush/ticketrush"
)

// DefaultEventsMaxAge is how old the public event answers may be: the
// longest a listed ticket_quantity lags the store.
const DefaultEventsMaxAge = time.Second

// eventView serves GET /api/events and GET /api/events/{id} from a
// per-process snapshot of every event, encoded once, so that a crowd
// refreshing the page costs no query per request.
//
// A read takes the snapshot with one atomic load and compares its age: no
// lock on the read path. A snapshot older than half of maxAge is served
// while one background load replaces it; one older than maxAge is not
// served, and the read waits for that load (one per process, however many
// readers wait). So an answer is never older than maxAge plus one load,
// and an idle server runs no query at all. Writes made through this server
// (create, patch, delete) drop the snapshot at once; those of other
// processes show within maxAge. Reserve never reads the view: the stock it
// decides on is the store's.
type eventView struct {
	store  ticketrush.Store
	maxAge time.Duration
	// timeout bounds one load; it runs apart from any request, so one
	// reader giving up does not fail the others.
	timeout time.Duration
	snap    atomic.Pointer[eventSnap]
	flight  atomic.Pointer[viewLoad]
	// gen counts the writes made through this server; a load that began
	// before the latest one is not served to readers that came after it.
	gen atomic.Int64
	mu  sync.Mutex // orders a load's store of its snapshot with invalidate
}

// eventSnap is one load of every event, encoded as the public answers,
// each body ending in a newline as writeBody sends it.
type eventSnap struct {
	at   time.Time
	list []byte           // the listing: events that are not hidden
	byID map[int64][]byte // every event, hidden ones too (readable by id)
}

// viewLoad is one load in flight; done closes when snap or err is set.
type viewLoad struct {
	gen  int64
	done chan struct{}
	snap *eventSnap
	err  error
}

func newEventView(s ticketrush.Store, maxAge, timeout time.Duration) *eventView {
	return &eventView{store: s, maxAge: maxAge, timeout: timeout}
}

// fresh returns the snapshot when it may be served as it is, starting a
// refresh behind it when it is past half its age; nil when the caller must
// wait for a load (get). It is the whole read path of a busy server: one
// atomic load and a clock read, no context, no lock.
func (v *eventView) fresh() *eventSnap {
	sn := v.snap.Load()
	if sn == nil {
		return nil
	}
	age := time.Since(sn.at)
	if age < v.maxAge/2 {
		return sn
	}
	if age < v.maxAge {
		v.load() // refresh behind the answer
		return sn
	}
	return nil
}

// get returns a snapshot no older than maxAge that has every write made
// through this server before the call.
func (v *eventView) get(ctx context.Context) (*eventSnap, error) {
	for {
		if sn := v.fresh(); sn != nil {
			return sn, nil
		}
		l := v.load()
		select {
		case <-l.done:
		case <-ctx.Done():
			return nil, ticketrush.Unavailable(ctx.Err())
		}
		if l.err != nil {
			return nil, l.err
		}
		if l.gen == v.gen.Load() {
			return l.snap, nil
		}
		// A write came through this server while that load ran: it may
		// not show in it. Load again.
	}
}

// load starts a load unless one is in flight, and returns the one that is.
func (v *eventView) load() *viewLoad {
	if l := v.flight.Load(); l != nil {
		return l
	}
	l := &viewLoad{gen: v.gen.Load(), done: make(chan struct{})}
	if !v.flight.CompareAndSwap(nil, l) {
		if cur := v.flight.Load(); cur != nil {
			return cur
		}
		return v.load()
	}
	go func() {
		// The snapshot's time is taken before the query: its age then
		// bounds how stale what it holds may be.
		at := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), v.timeout)
		defer cancel()
		events, err := v.store.Events(ctx)
		if err == nil {
			l.snap, l.err = encodeEvents(at, events)
		} else {
			l.err = err
		}
		v.mu.Lock()
		if l.err == nil && l.gen == v.gen.Load() {
			v.snap.Store(l.snap)
		}
		v.flight.Store(nil)
		v.mu.Unlock()
		close(l.done)
	}()
	return l
}

// invalidate drops the snapshot after a write through this server, so the
// next read loads one that has the write.
func (v *eventView) invalidate() {
	v.mu.Lock()
	v.gen.Add(1)
	v.snap.Store(nil)
	v.mu.Unlock()
}

func encodeEvents(at time.Time, events []*ticketrush.Event) (*eventSnap, error) {
	sn := &eventSnap{at: at, byID: make(map[int64][]byte, len(events))}
	list := make([]Event, 0, len(events))
	for _, e := range events {
		w := newEvent(e)
		b, err := json.Marshal(Envelope[Event]{Data: w})
		if err != nil {
			return nil, err
		}
		sn.byID[e.ID] = append(b, '\n')
		if !e.Hidden {
			list = append(list, w)
		}
	}
	b, err := json.Marshal(Envelope[[]Event]{Data: list})
	if err != nil {
		return nil, err
	}
	sn.list = append(b, '\n')
	return sn, nil
}

// snapshot returns the event view's snapshot, waiting for a load, under
// the request's deadline, only when the one it has is too old.
func (s *Server) snapshot(r *http.Request) (*eventSnap, error) {
	if sn := s.events.fresh(); sn != nil {
		return sn, nil
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	return s.events.get(ctx)
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request) {
	sn, err := s.snapshot(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeEncoded(w, sn.list)
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	sn, err := s.snapshot(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if b, ok := sn.byID[id]; ok {
		writeEncoded(w, b)
		return
	}
	// Not in the snapshot: an event created since (by another process),
	// or none. The store says which.
	ctx, cancel := s.ctx(r)
	defer cancel()
	e, err := s.store.Event(ctx, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Envelope[Event]{Data: newEvent(e)})
}

// writeEncoded answers 200 with a body from a snapshot, shared by every
// reader: it is written as is, never appended to.
func writeEncoded(w http.ResponseWriter, b []byte) {
	h := w.Header()
	setJSONHeaders(h)
	// A listing is larger than net/http buffers before it falls back to
	// chunked encoding: its length, known here, saves the framing.
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	w.Write(b)
}
