package httpapi

import (
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/ticketrush/ticketrush"
)

// msgImmutable refuses a patch of a field that cannot change.
const msgImmutable = "cannot be changed"

// listAdminEvents lists every event, hidden ones too, as the dashboard
// needs them.
func (s *Server) listAdminEvents(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := s.ctx(r)
	defer cancel()
	events, err := s.store.Events(ctx)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := make([]Event, len(events))
	for i, e := range events {
		out[i] = newAdminEvent(e)
	}
	writeJSON(w, http.StatusOK, Envelope[[]Event]{Data: out})
}

// getAdminEvent reads one event with its admin fields.
func (s *Server) getAdminEvent(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	e, err := s.store.Event(ctx, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Envelope[Event]{Data: newAdminEvent(e)})
}

// patchEvent applies a JSON merge patch (RFC 7396) to an event's settings.
// A partial waiting_room is merged field by field with the current one, so
// the store always gets complete settings; null removes the room.
func (s *Server) patchEvent(w http.ResponseWriter, r *http.Request) {
	q := s.store
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := readMergePatch(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	cur, err := s.store.Event(ctx, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	u, err := decodeEventPatch(body, cur)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	e, err := q.UpdateEvent(ctx, id, u)
	s.wr.rooms.forget(id)
	s.events.invalidate()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Envelope[Event]{Data: newAdminEvent(e)})
}

// deleteEvent removes an event that never had a reservation.
func (s *Server) deleteEvent(w http.ResponseWriter, r *http.Request) {
	q := s.store
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	err = q.DeleteEvent(ctx, id)
	s.wr.rooms.forget(id)
	s.events.invalidate()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// readMergePatch reads a PATCH body sent as application/merge-patch+json
// (RFC 7396) or application/json, under readBody's other rules.
func readMergePatch(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Values("Content-Type"); len(ct) == 1 && isMergePatchType(ct[0]) {
		// readBody knows application/json only; the two mean the same
		// here.
		r2 := *r
		r2.Header = r.Header.Clone()
		r2.Header.Set("Content-Type", "application/json")
		r = &r2
	} else if len(ct) > 0 && (len(ct) > 1 || !isJSONContentType(ct[0])) {
		return nil, ticketrush.Errorf(ticketrush.EUnsupportedMedia, "The Content-Type must be application/merge-patch+json or application/json.")
	}
	return readBody(w, r)
}

func isMergePatchType(v string) bool {
	mt, params, err := mime.ParseMediaType(v)
	if err != nil || mt != "application/merge-patch+json" {
		return false
	}
	for k, p := range params {
		if k != "charset" || !strings.EqualFold(p, "utf-8") {
			return false
		}
	}
	return true
}

// decodeEventPatch turns a merge patch of cur into an update. Every bad
// field is named: unknown ones, ones that cannot be changed, bad types and
// values, nested ones as waiting_room.field.
func decodeEventPatch(body []byte, cur *ticketrush.Event) (ticketrush.EventUpdate, error) {
	m, err := decodeObject(body)
	if err != nil {
		return ticketrush.EventUpdate{}, err
	}
	f := newForm(m)
	var u ticketrush.EventUpdate
	if f.Has("name") {
		if name, ok := f.String("name"); ok {
			name = strings.TrimSpace(name)
			if strings.IndexFunc(name, unicode.IsControl) >= 0 {
				f.Add("name", "must not contain control characters")
			}
			u.Name = &name
		}
	}
	u.Hidden = patchBool(f, "hidden")
	u.SaleClosed = patchBool(f, "sale_closed")
	if f.IsNull("max_per_order") {
		n := int64(ticketrush.DefaultMaxPerOrder)
		u.MaxPerOrder = &n
	} else if n, ok := f.OptInt("max_per_order", 1, ticketrush.MaxAmount, msgMaxPerOrder); ok {
		u.MaxPerOrder = &n
	}
	if f.IsNull("waiting_room") {
		u.SetWaitingRoom = true
	} else if wf, ok := f.Object("waiting_room"); ok {
		u.SetWaitingRoom = true
		u.WaitingRoom = readWaitingRoom(wf, cur.WaitingRoom, cur.SaleStartsAt)
	}
	for _, name := range immutableEventFields {
		if f.Has(name) {
			f.Add(name, msgImmutable)
		}
	}
	if err := f.Err(); err != nil {
		return ticketrush.EventUpdate{}, err
	}
	if err := u.Validate(); err != nil {
		return ticketrush.EventUpdate{}, err
	}
	return u, nil
}

// immutableEventFields are the event's fields a patch may not change: the
// stock moves only by sales, and hold time, visitor limit and sale start
// stay as the sale was announced.
var immutableEventFields = []string{"id", "ticket_quantity", "capacity", "hold_seconds", "max_per_visitor", "sale_starts_at", "created_at", "updated_at"}

const msgMaxPerOrder = "must be an integer from 1 to 10000"

// patchBool reads a boolean member of a patch: absent is nil (unchanged);
// null removes the setting, which for a flag is its default, false.
func patchBool(f *form, name string) *bool {
	if f.IsNull(name) {
		off := false
		return &off
	}
	if b, ok := f.OptBool(name); ok {
		return &b
	}
	return nil
}

// decodeEventSettings reads the create request's settings beside the
// original's fields: max_per_order, hidden and waiting_room.
func decodeEventSettings(f *form, ne *ticketrush.NewEvent) {
	if n, ok := f.OptInt("max_per_order", 1, ticketrush.MaxAmount, msgMaxPerOrder); ok {
		ne.MaxPerOrder = n
	}
	if b, ok := f.OptBool("hidden"); ok {
		ne.Hidden = b
	}
	if wf, ok := f.Object("waiting_room"); ok {
		ne.WaitingRoom = readWaitingRoom(wf, nil, ne.SaleStartsAt)
	}
}

// readWaitingRoom reads a waiting_room object merged over cur (nil: the
// defaults, and admit_per_minute is required). A member set to null goes
// back to its default. sale is the event's sale_starts_at: a pre-queue
// must open before it, or the queue would stay shut after the sale starts.
func readWaitingRoom(f *form, cur *ticketrush.WaitingRoom, sale *time.Time) *ticketrush.WaitingRoom {
	w := ticketrush.WaitingRoom{PassSeconds: ticketrush.DefaultPassSeconds}
	if cur != nil {
		w = *cur
	}
	haveRate := cur != nil
	switch {
	case f.IsNull("admit_per_minute"):
		haveRate = false
	case f.Has("admit_per_minute"):
		// A bad value has its own message; it must not also read as
		// missing.
		haveRate = true
		if n, ok := f.OptInt("admit_per_minute", 1, ticketrush.MaxAdmitPerMinute, "must be an integer from 1 to 1000000"); ok {
			w.AdmitPerMinute = n
		}
	}
	if !haveRate {
		f.Add("admit_per_minute", msgRequired)
	}
	optInt := func(name string, dst *int64, def, lo, hi int64, msg string) {
		if f.IsNull(name) {
			*dst = def
		} else if n, ok := f.OptInt(name, lo, hi, msg); ok {
			*dst = n
		}
	}
	optInt("max_active", &w.MaxActive, 0, 0, ticketrush.MaxTicketQuantity, "must be an integer from 0 (no cap) to 100000000")
	optInt("pass_seconds", &w.PassSeconds, ticketrush.DefaultPassSeconds, 1, ticketrush.MaxHoldSeconds, "must be an integer from 1 to 86400")
	optInt("challenge_bits", &w.ChallengeBits, 0, 0, ticketrush.MaxChallengeBits, "must be an integer from 0 to 24")
	if f.IsNull("prequeue_opens_at") {
		w.PrequeueOpensAt = nil
	} else if t, ok := f.OptTime("prequeue_opens_at"); ok {
		w.PrequeueOpensAt = &t
		if sale != nil && !t.Before(*sale) {
			f.Add("prequeue_opens_at", "must be before sale_starts_at")
		}
	}
	if f.IsNull("paused") {
		w.Paused = false
	} else if b, ok := f.OptBool("paused"); ok {
		w.Paused = b
	}
	return &w
}
