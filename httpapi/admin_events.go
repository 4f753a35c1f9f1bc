package httpapi

import (
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/ticketrush/ticketrush"
)

// Field messages of the event settings.
const (
	msgUnknownField = "is not a known field"
	msgImmutable    = "cannot be changed"
	msgBool         = "must be true or false"
	msgObject       = "must be an object or null"
	msgTime         = "must be an RFC 3339 time between the years 1970 and 9999"
)

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
	q, err := s.queueStore()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
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
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Envelope[Event]{Data: newAdminEvent(e)})
}

// deleteEvent removes an event that never had a reservation.
func (s *Server) deleteEvent(w http.ResponseWriter, r *http.Request) {
	q, err := s.queueStore()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	err = q.DeleteEvent(ctx, id)
	s.wr.rooms.forget(id)
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
	v := ticketrush.ValidationError{}
	var u ticketrush.EventUpdate
	for key, val := range m {
		switch key {
		case "name":
			if name, ok := nameValue(val, v); ok {
				u.Name = &name
			}
		case "hidden":
			if b, ok := boolValue(val, v, key); ok {
				u.Hidden = &b
			}
		case "sale_closed":
			if b, ok := boolValue(val, v, key); ok {
				u.SaleClosed = &b
			}
		case "max_per_order":
			n := int64(ticketrush.DefaultMaxPerOrder) // null: back to the default
			if val.kind != kindNull {
				n = intValue(val, v, key, 1, ticketrush.MaxAmount, "must be an integer from 1 to 10000")
			}
			u.MaxPerOrder = &n
		case "waiting_room":
			u.SetWaitingRoom = true
			if val.kind != kindNull {
				u.WaitingRoom = decodeWaitingRoom(val, cur.WaitingRoom, v, key)
			}
		case "id", "ticket_quantity", "capacity", "hold_seconds", "max_per_visitor", "sale_starts_at", "created_at", "updated_at":
			v.Add(key, msgImmutable)
		default:
			v.Add(truncate(key, 64), msgUnknownField)
		}
	}
	if err := v.Err(); err != nil {
		return ticketrush.EventUpdate{}, err
	}
	if err := u.Validate(); err != nil {
		return ticketrush.EventUpdate{}, err
	}
	return u, nil
}

// decodeEventSettings reads the create request's settings beside the
// original's fields: max_per_order, hidden and waiting_room.
func decodeEventSettings(m map[string]jsonValue, v ticketrush.ValidationError, ne *ticketrush.NewEvent) {
	if val, ok := m["max_per_order"]; ok && val.kind != kindNull {
		ne.MaxPerOrder = intValue(val, v, "max_per_order", 1, ticketrush.MaxAmount, "must be an integer from 1 to 10000")
	}
	if val, ok := m["hidden"]; ok && val.kind != kindNull {
		ne.Hidden, _ = boolValue(val, v, "hidden")
	}
	if val, ok := m["waiting_room"]; ok && val.kind != kindNull {
		ne.WaitingRoom = decodeWaitingRoom(val, nil, v, "waiting_room")
	}
}

// decodeWaitingRoom reads a waiting_room object, merged over cur (nil: the
// defaults, and admit_per_minute is required). A member set to null goes
// back to its default. It returns nil when val is no object.
func decodeWaitingRoom(val jsonValue, cur *ticketrush.WaitingRoom, v ticketrush.ValidationError, prefix string) *ticketrush.WaitingRoom {
	if val.kind != kindObject {
		v.Add(prefix, msgObject)
		return nil
	}
	m, err := decodeObject(val.raw)
	if err != nil {
		// The whole body was scanned already; this cannot fail.
		v.Add(prefix, msgObject)
		return nil
	}
	w := ticketrush.WaitingRoom{PassSeconds: ticketrush.DefaultPassSeconds}
	if cur != nil {
		w = *cur
	}
	haveRate := cur != nil
	for key, val := range m {
		name := prefix + "." + key
		null := val.kind == kindNull
		switch key {
		case "admit_per_minute":
			if null {
				haveRate = false
				continue
			}
			w.AdmitPerMinute = intValue(val, v, name, 1, ticketrush.MaxAdmitPerMinute, "must be an integer from 1 to 1000000")
			haveRate = true
		case "max_active":
			w.MaxActive = 0
			if !null {
				w.MaxActive = intValue(val, v, name, 0, ticketrush.MaxTicketQuantity, "must be an integer from 0 (no cap) to 100000000")
			}
		case "pass_seconds":
			w.PassSeconds = ticketrush.DefaultPassSeconds
			if !null {
				w.PassSeconds = intValue(val, v, name, 1, ticketrush.MaxHoldSeconds, "must be an integer from 1 to 86400")
			}
		case "challenge_bits":
			w.ChallengeBits = 0
			if !null {
				w.ChallengeBits = intValue(val, v, name, 0, ticketrush.MaxChallengeBits, "must be an integer from 0 to 24")
			}
		case "prequeue_opens_at":
			w.PrequeueOpensAt = nil
			if !null {
				w.PrequeueOpensAt = timeValue(val, v, name)
			}
		case "paused":
			w.Paused = false
			if !null {
				w.Paused, _ = boolValue(val, v, name)
			}
		default:
			v.Add(prefix+"."+truncate(key, 64), msgUnknownField)
		}
	}
	if !haveRate {
		v.Add(prefix+".admit_per_minute", msgRequired)
	}
	return &w
}

func boolValue(val jsonValue, v ticketrush.ValidationError, name string) (bool, bool) {
	if val.kind != kindBool {
		v.Add(name, msgBool)
		return false, false
	}
	return val.b, true
}

func nameValue(val jsonValue, v ticketrush.ValidationError) (string, bool) {
	if val.kind != kindString {
		v.Add("name", msgString)
		return "", false
	}
	name := strings.TrimSpace(val.str)
	if strings.IndexFunc(name, unicode.IsControl) >= 0 {
		v.Add("name", "must not contain control characters")
		return "", false
	}
	return name, true
}

func timeValue(val jsonValue, v ticketrush.ValidationError, name string) *time.Time {
	if val.kind != kindString {
		v.Add(name, msgTime)
		return nil
	}
	t, err := time.Parse(time.RFC3339Nano, val.str)
	if err != nil {
		v.Add(name, msgTime)
		return nil
	}
	t = t.UTC().Truncate(time.Microsecond)
	if t.Year() < minSaleYear || t.Year() > maxSaleYear {
		v.Add(name, msgTime)
		return nil
	}
	return &t
}

// errNoQueues answers when the store has no waiting room support.
var errNoQueues = errors.New("httpapi: the store does not implement ticketrush.Queues")
