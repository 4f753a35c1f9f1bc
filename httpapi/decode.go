package httpapi

import (
	"bytes"
	"errors"
	"io"
	"iter"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/ticketrush/ticketrush"
)

// MaxBodyBytes caps every request body. The largest valid body (an event
// with a 200-character name) is far below it.
const MaxBodyBytes = 64 << 10

// maxDepth caps nesting in a body (its object is depth 1). The deepest
// valid body nests one object; the cap bounds the work a hostile one costs.
const maxDepth = 32

// readBody reads a request body for a strict JSON decoder: Content-Type
// application/json (charset utf-8 allowed), at most MaxBodyBytes. The type
// is required: a body without it (or with a form or text type) is what a
// browser sends cross-site with no CORS preflight, so accepting it would
// let any web page make its visitors' browsers call the API.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	if ct := r.Header.Values("Content-Type"); len(ct) != 1 || !isJSONContentType(ct[0]) {
		return nil, ticketrush.Errorf(ticketrush.EUnsupportedMedia, "The Content-Type must be application/json: send the header Content-Type: application/json with the body.")
	}
	if r.ContentLength > MaxBodyBytes {
		return nil, errBodyTooLarge()
	}
	if rw, ok := w.(*responseWriter); ok {
		// The server's own writer learns from MaxBytesReader that the
		// connection must close rather than drain an oversized body.
		w = rw.ResponseWriter
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, errBodyTooLarge()
		}
		// The client sent less than it announced or went away: either way
		// the body is truncated.
		return nil, errInvalidJSON("The request body could not be read.")
	}
	return body, nil
}

func errBodyTooLarge() error {
	return ticketrush.Errorf(ticketrush.EBodyTooLarge, "The request body must be at most 64 KiB.")
}

func isJSONContentType(v string) bool {
	if v == "application/json" {
		return true // what nearly every client sends; no parse needed
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil || mt != "application/json" {
		return false
	}
	for k, p := range params {
		if k != "charset" || !strings.EqualFold(p, "utf-8") {
			return false
		}
	}
	return true
}

func errInvalidJSON(msg string) error {
	return ticketrush.Errorf(ticketrush.EInvalidJSON, "%s", msg)
}

// object is one JSON object's members in the order sent. Each value is
// the member's raw JSON text exactly as sent, without surrounding
// whitespace, and already checked: valid UTF-8, no repeated name at any
// level, nesting within maxDepth. A value's Kind tells what it holds: 'n'
// null, 't' or 'f' a boolean, '"' a string, '0' a number, '{' an object,
// '[' an array. Read it through a form, which turns values into Go values
// and refuses the members nobody asked for.
type object struct {
	members []member
}

// member is one member of an object.
type member struct {
	name  []byte // unescaped; shares the body's bytes when sent unescaped
	value jsontext.Value
	read  bool // a form asked for it: a known field
}

// Len returns the number of members.
func (o object) Len() int { return len(o.members) }

// All yields each member's name and raw value, in the order sent.
func (o object) All() iter.Seq2[string, jsontext.Value] {
	return func(yield func(string, jsontext.Value) bool) {
		for _, m := range o.members {
			if !yield(string(m.name), m.value) {
				return
			}
		}
	}
}

// find returns the index of the member called name, or -1. A linear scan
// beats a map for the few members a valid body has, and costs no
// allocation.
func (o object) find(name string) int {
	for i := range o.members {
		if string(o.members[i].name) == name {
			return i
		}
	}
	return -1
}

// objectDecoder is a reusable jsontext decoder. Reading from a bytes.Buffer
// lets jsontext parse the body in place instead of copying it.
type objectDecoder struct {
	buf bytes.Buffer
	dec jsontext.Decoder
}

var objectDecoders = sync.Pool{New: func() any { return new(objectDecoder) }}

var (
	errNotObject = errInvalidJSON("The request body must be a JSON object.")
	errTrailing  = errInvalidJSON("The request body must hold exactly one JSON object.")
	errTooDeep   = errInvalidJSON("The request body is nested too deeply.")
	errSyntax    = errInvalidJSON("The request body is not valid JSON.")
	errUTF8      = errInvalidJSON("The request body must be valid UTF-8.")
)

// decodeObject parses body as exactly one JSON object and returns its
// members. It refuses, as invalid_json (400), anything else: invalid
// UTF-8, another type at the top, trailing data, a repeated name at any
// level (a proxy and this server must not read different requests from one
// body) and nesting deeper than maxDepth. jsontext enforces all but the
// depth cap by default. Values are left raw so that each field can be
// checked on its own and every bad one named in one answer. The object
// shares body's bytes: body must not change while it is in use.
func decodeObject(body []byte) (object, error) {
	return decodeObjectInto(body, nil)
}

// decodeObjectInto is decodeObject appending the members to buf: a caller
// that knows how many fields to expect allocates once, at the right size.
//
//	var buf [2]member
//	o, err := decodeObjectInto(body, buf[:0])
func decodeObjectInto(body []byte, buf []member) (object, error) {
	od := objectDecoders.Get().(*objectDecoder)
	o, err := od.decode(body, buf)
	// A pooled decoder keeps its last body until its next use or until
	// the pool drops it at a garbage collection: at most MaxBodyBytes
	// each, cheaper than a second Reset on every request.
	objectDecoders.Put(od)
	if err != nil {
		return object{}, syntaxError(body, err)
	}
	return o, nil
}

func (od *objectDecoder) decode(body []byte, buf []member) (object, error) {
	od.buf = *bytes.NewBuffer(body)
	d := &od.dec
	d.Reset(&od.buf)
	tok, err := d.ReadToken()
	switch {
	case err == io.EOF:
		return object{}, errNotObject
	case err != nil:
		return object{}, err
	case tok.Kind() != '{':
		return object{}, errNotObject
	}
	o := object{members: buf[:0]}
	for d.PeekKind() != '}' {
		name, err := od.value(body)
		if err != nil {
			return object{}, err
		}
		val, err := od.value(body)
		if err != nil {
			return object{}, err
		}
		if k := val.Kind(); (k == '{' || k == '[') && nesting(val) > maxDepth-1 {
			return object{}, errTooDeep
		}
		o.members = append(o.members, member{name: unquote(name), value: val})
	}
	if _, err := d.ReadToken(); err != nil { // the closing '}'
		return object{}, err
	}
	if _, err := d.ReadToken(); err != io.EOF {
		return object{}, errTrailing
	}
	return o, nil
}

// value reads the next name or value, and returns it as it sits in body:
// still valid after the next read, which the decoder's own slice is not.
func (od *objectDecoder) value(body []byte) (jsontext.Value, error) {
	v, err := od.dec.ReadValue()
	if err != nil {
		return nil, err
	}
	end := int(od.dec.InputOffset())
	return jsontext.Value(body[end-len(v) : end : end]), nil
}

// unquote returns the text of a valid JSON string, sharing q's bytes
// unless it has escapes.
func unquote(q []byte) []byte {
	if bytes.IndexByte(q, '\\') < 0 {
		return q[1 : len(q)-1]
	}
	s, err := jsontext.AppendUnquote(nil, q)
	if err != nil {
		panic("httpapi: unquote of a string jsontext accepted: " + err.Error())
	}
	return s
}

// syntaxError turns a jsontext error into the invalid_json answer that
// says what is wrong.
func syntaxError(body []byte, err error) error {
	if _, ok := errors.AsType[*ticketrush.Error](err); ok {
		return err
	}
	switch {
	case !utf8.Valid(body):
		return errUTF8
	case errors.Is(err, jsontext.ErrDuplicateName):
		if se, ok := errors.AsType[*jsontext.SyntacticError](err); ok {
			return errDuplicateKey(se.JSONPointer.LastToken())
		}
		return errInvalidJSON("The request body repeats a key.")
	case nesting(body) > maxDepth:
		return errTooDeep
	case hasLoneSurrogate(body):
		return errInvalidJSON("The request body must be valid Unicode: an escaped surrogate (\\ud800 to \\udfff) must be one of a pair.")
	}
	return errSyntax
}

// hasLoneSurrogate reports whether b escapes a UTF-16 surrogate that is not
// half of a pair, which has no UTF-8 form: jsontext refuses it rather than
// read it as U+FFFD, as encoding/json would.
func hasLoneSurrogate(b []byte) bool {
	for i := 0; i < len(b); i++ {
		if b[i] != '\\' || i+1 >= len(b) {
			continue
		}
		i++ // the escaped character
		r, ok := hexRune(b, i)
		if !ok {
			continue
		}
		i += 4
		switch {
		case r >= 0xdc00 && r <= 0xdfff:
			return true
		case r >= 0xd800 && r <= 0xdbff:
			if i+2 >= len(b) || b[i+1] != '\\' || b[i+2] != 'u' {
				return true
			}
			lo, ok := hexRune(b, i+2)
			if !ok || lo < 0xdc00 || lo > 0xdfff {
				return true
			}
			i += 6
		}
	}
	return false
}

// hexRune reads the four hex digits after the 'u' at b[i].
func hexRune(b []byte, i int) (rune, bool) {
	if b[i] != 'u' || i+4 >= len(b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[i+1:i+5]), 16, 16)
	return rune(n), err == nil
}

// nesting returns how deeply objects and arrays nest in v, which need not
// be valid JSON.
func nesting(v []byte) int {
	depth, deepest := 0, 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '"':
			for i++; i < len(v) && v[i] != '"'; i++ {
				if v[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
			deepest = max(deepest, depth)
		case '}', ']':
			depth--
		}
	}
	return deepest
}

func errDuplicateKey(key string) error {
	return errInvalidJSON("The request body repeats the key " + strconv.Quote(truncate(key, 64)) + ".")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Field messages, shared so the same mistake reads the same everywhere.
const (
	msgRequired = "is required"
	msgInteger  = "must be an integer"
	msgString   = "must be a string"
	msgBool     = "must be true or false"
	msgObject   = "must be an object"
	msgUnknown  = "is not a known field"
)

// maxUnknownNamed caps how many unknown members of one object an answer
// names, so a hostile body of thousands of tiny members cannot make the
// error answer several times larger than itself.
const maxUnknownNamed = 100

// form reads the members of one decoded JSON object into Go values and
// collects one message per bad field, so that a request with several
// mistakes gets one 422 validation_failed answer naming each of them in
// "fields". Every handler with a JSON body decodes through it:
//
//	o, err := decodeObject(body) // syntax: 400 invalid_json
//	if err != nil {
//		return err
//	}
//	f := newForm(o)
//	id := f.Int("event_id", 1, math.MaxInt64, msgPositiveID) // required
//	hold, ok := f.OptInt("hold_seconds", 1, 86400, "must be …") // absent or null: ok false
//	if wr, ok := f.Object("waiting_room"); ok { // a nested object, read the same way
//		n := wr.Int("admit_per_minute", 1, 100000, "must be …") // named "waiting_room.admit_per_minute"
//		paused, set := wr.OptBool("paused")
//	}
//	if err := f.Err(); err != nil { // bad and unknown fields, nested ones included
//		return err
//	}
//
// Rules every getter keeps: each member is read by the getter of its type;
// a missing required member is "is required"; a value of the wrong type
// (null included, for a required member) gets the getter's message;
// integers must be JSON integers (1.0 and 1e3 are refused, whatever their
// value). Optional getters treat null as absent. A JSON merge patch
// (RFC 7396), where null means "remove" and absence "leave as is", asks
// IsNull first and reads the value otherwise. Members no getter asked for
// are refused by Err as "is not a known field" (at most maxUnknownNamed of
// them per object are named): a typo must never be dropped silently. Add
// reports a rule spanning several fields under this form's prefix. Value
// decodes a member into any Go value with go-json-experiment, for shapes
// the getters do not cover; Raw hands out the raw text.
//
// A form is not safe for concurrent use.
type form struct {
	o      object
	prefix string                     // dotted path of this object in the body, "" at the top
	v      ticketrush.ValidationError // nil until the first message
	nested []*form
}

// newForm returns a form over the members of the body's object.
func newForm(o object) *form {
	return &form{o: o}
}

// get marks name as a known field and returns its value.
func (f *form) get(name string) (jsontext.Value, bool) {
	i := f.o.find(name)
	if i < 0 {
		return nil, false
	}
	f.o.members[i].read = true
	return f.o.members[i].value, true
}

// Add records msg for the field name of this object, unless the field
// already has a message: the first mistake found is the one to fix.
func (f *form) Add(name, msg string) {
	f.add(f.prefix+name, msg)
}

func (f *form) add(path, msg string) {
	if f.v == nil {
		f.v = ticketrush.ValidationError{}
	}
	f.v.Add(path, msg)
}

// Has reports whether the object has the member, null included. It marks
// the member as known.
func (f *form) Has(name string) bool {
	_, ok := f.get(name)
	return ok
}

// IsNull reports whether the member is present and null: "remove" in a
// merge patch. It marks the member as known.
func (f *form) IsNull(name string) bool {
	val, ok := f.get(name)
	return ok && val.Kind() == 'n'
}

// Raw returns the member's raw JSON text (see object) and marks it known.
func (f *form) Raw(name string) (jsontext.Value, bool) {
	return f.get(name)
}

// Int reads a required integer member in [lo, hi]; rangeMsg names the
// range. It returns 0 after recording a message.
func (f *form) Int(name string, lo, hi int64, rangeMsg string) int64 {
	val, ok := f.get(name)
	if !ok {
		f.Add(name, msgRequired)
		return 0
	}
	n, _ := f.intValue(name, val, lo, hi, rangeMsg)
	return n
}

// OptInt reads an optional integer member in [lo, hi]. ok is false when
// the member is absent, null or bad (a message is then recorded).
func (f *form) OptInt(name string, lo, hi int64, rangeMsg string) (n int64, ok bool) {
	val, ok := f.get(name)
	if !ok || val.Kind() == 'n' {
		return 0, false
	}
	return f.intValue(name, val, lo, hi, rangeMsg)
}

func (f *form) intValue(name string, val jsontext.Value, lo, hi int64, rangeMsg string) (int64, bool) {
	if val.Kind() != '0' || !isJSONInteger(val) {
		f.Add(name, msgInteger)
		return 0, false
	}
	n, ok := parseInt(val)
	if !ok || n < lo || n > hi {
		f.Add(name, rangeMsg)
		return 0, false
	}
	return n, true
}

// isJSONInteger reports whether b is an integer in JSON's grammar:
// -?(0|[1-9][0-9]*), no fraction, no exponent.
func isJSONInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || (b[0] == '0' && len(b) > 1) {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// parseInt parses a JSON integer; ok is false past int64.
func parseInt(b []byte) (int64, bool) {
	neg := b[0] == '-'
	if neg {
		b = b[1:]
	}
	var u uint64
	for _, c := range b {
		if u > (1<<64-1)/10 {
			return 0, false
		}
		u = u*10 + uint64(c-'0')
		if u < uint64(c-'0') {
			return 0, false
		}
	}
	switch {
	case neg && u <= 1<<63:
		return int64(-u), true // -(1<<63) wraps to itself, MinInt64
	case !neg && u <= 1<<63-1:
		return int64(u), true
	}
	return 0, false
}

// String reads a required string member.
func (f *form) String(name string) (string, bool) {
	val, ok := f.get(name)
	if !ok {
		f.Add(name, msgRequired)
		return "", false
	}
	return f.stringValue(name, val, msgString)
}

// OptString reads an optional string member; absent or null is ok false.
func (f *form) OptString(name string) (string, bool) {
	val, ok := f.get(name)
	if !ok || val.Kind() == 'n' {
		return "", false
	}
	return f.stringValue(name, val, msgString)
}

func (f *form) stringValue(name string, val jsontext.Value, msg string) (string, bool) {
	if val.Kind() != '"' {
		f.Add(name, msg)
		return "", false
	}
	if bytes.IndexByte(val, '\\') < 0 {
		return string(val[1 : len(val)-1]), true
	}
	s, err := jsontext.AppendUnquote(nil, val)
	if err != nil { // cannot happen: decodeObject checked the value
		f.Add(name, msg)
		return "", false
	}
	return string(s), true
}

// OptBool reads an optional boolean member; absent or null is ok false.
func (f *form) OptBool(name string) (b, ok bool) {
	val, ok := f.get(name)
	if !ok || val.Kind() == 'n' {
		return false, false
	}
	switch val.Kind() {
	case 't':
		return true, true
	case 'f':
		return false, true
	}
	f.Add(name, msgBool)
	return false, false
}

// Years a time may fall in: they keep every backend's time column and the
// wire format (four-digit years) exact.
const (
	minSaleYear = 1970
	maxSaleYear = 9999
)

// msgTime is the message of a bad time member.
const msgTime = "must be an RFC 3339 time between the years 1970 and 9999"

// OptTime reads an optional RFC 3339 time member (absent or null is ok
// false), in UTC, truncated to the microsecond every backend stores, with
// a year from 1970 to 9999.
func (f *form) OptTime(name string) (time.Time, bool) {
	val, ok := f.get(name)
	if !ok || val.Kind() == 'n' {
		return time.Time{}, false
	}
	s, ok := f.stringValue(name, val, msgTime)
	if !ok {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		f.Add(name, msgTime)
		return time.Time{}, false
	}
	if t = t.UTC().Truncate(time.Microsecond); t.Year() < minSaleYear || t.Year() > maxSaleYear {
		f.Add(name, msgTime)
		return time.Time{}, false
	}
	return t, true
}

// Object reads an optional nested object member (absent or null is ok
// false) as a form of its own. Its messages, unknown members included,
// join this form's answer under dotted names ("waiting_room.max_active").
func (f *form) Object(name string) (*form, bool) {
	val, ok := f.get(name)
	if !ok || val.Kind() == 'n' {
		return nil, false
	}
	if val.Kind() != '{' {
		f.Add(name, msgObject)
		return nil, false
	}
	o, err := decodeObject(val)
	if err != nil { // cannot happen: the body's decode checked it
		f.Add(name, msgObject)
		return nil, false
	}
	sub := &form{o: o, prefix: f.prefix + name + "."}
	f.nested = append(f.nested, sub)
	return sub, true
}

// Value decodes an optional member into dst (a pointer) with
// go-json-experiment, refusing unknown members of nested objects; absent
// or null is false. On failure it records msg and returns false.
func (f *form) Value(name string, dst any, msg string) bool {
	val, ok := f.get(name)
	if !ok || val.Kind() == 'n' {
		return false
	}
	if err := json.Unmarshal(val, dst, json.RejectUnknownMembers(true)); err != nil {
		f.Add(name, msg)
		return false
	}
	return true
}

// Err records every member no getter asked for as unknown, here and in
// nested forms, and returns the validation_failed error naming each bad
// field, or nil.
func (f *form) Err() error {
	f.finish()
	return f.v.Err()
}

// finish adds the unknown members and the nested forms' messages.
func (f *form) finish() {
	var unknown []string
	for _, m := range f.o.members {
		if !m.read {
			unknown = append(unknown, string(m.name))
		}
	}
	slices.Sort(unknown)
	for _, name := range unknown[:min(len(unknown), maxUnknownNamed)] {
		f.Add(truncate(name, 64), msgUnknown)
	}
	for _, sub := range f.nested {
		sub.finish()
		for path, msg := range sub.v {
			f.add(path, msg)
		}
	}
}

const (
	msgPositiveID = "must be a positive integer"
	msgAmount     = "must be an integer from 1 to 10000"
)

// decodeReserve decodes and validates the body of POST /api/reserve. It
// returns a valid request or a *ticketrush.Error with a 4xx code.
func decodeReserve(body []byte) (eventID, amount int64, err error) {
	var buf [2]member
	o, err := decodeObjectInto(body, buf[:0])
	if err != nil {
		return 0, 0, err
	}
	f := newForm(o)
	eventID = f.Int("event_id", 1, 1<<63-1, msgPositiveID)
	amount = f.Int("amount", 1, ticketrush.MaxAmount, msgAmount)
	if err := f.Err(); err != nil {
		return 0, 0, err
	}
	return eventID, amount, nil
}

// decodePurchase decodes and validates the body of POST /api/purchase. It
// returns a valid reservation id or a *ticketrush.Error with a 4xx code.
func decodePurchase(body []byte) (reservationID int64, err error) {
	var buf [1]member
	o, err := decodeObjectInto(body, buf[:0])
	if err != nil {
		return 0, err
	}
	f := newForm(o)
	reservationID = f.Int("reservation_id", 1, 1<<63-1, msgPositiveID)
	if err := f.Err(); err != nil {
		return 0, err
	}
	return reservationID, nil
}

// decodeCreateEvent decodes and validates the body of POST
// /api/admin/events. defaultHold fills hold_seconds when the body omits it
// (or sends null). It returns an event that passes NewEvent.Validate or a
// *ticketrush.Error with a 4xx code.
func decodeCreateEvent(body []byte, defaultHold int64) (ticketrush.NewEvent, error) {
	o, err := decodeObject(body)
	if err != nil {
		return ticketrush.NewEvent{}, err
	}
	f := newForm(o)
	var ne ticketrush.NewEvent
	if name, ok := f.String("name"); ok {
		ne.Name = strings.TrimSpace(name)
		if strings.IndexFunc(ne.Name, unicode.IsControl) >= 0 {
			// Control characters (NUL above all, which PostgreSQL text
			// refuses) have no place in a name shown to visitors.
			f.Add("name", "must not contain control characters")
		}
	}
	ne.TicketQuantity = f.Int("ticket_quantity", 1, ticketrush.MaxTicketQuantity,
		"must be an integer from 1 to 100000000")
	ne.HoldSeconds = defaultHold
	if n, ok := f.OptInt("hold_seconds", 1, ticketrush.MaxHoldSeconds, "must be an integer from 1 to 86400"); ok {
		ne.HoldSeconds = n
	}
	ne.MaxPerVisitor, _ = f.OptInt("max_per_visitor", 0, ticketrush.MaxTicketQuantity,
		"must be an integer from 0 (no limit) to 100000000")
	if t, ok := f.OptTime("sale_starts_at"); ok {
		ne.SaleStartsAt = &t
	}
	decodeEventSettings(f, &ne)
	// The domain's own rules have the last word (name length, for one);
	// Add keeps the first message, so a missing or mistyped field reads as
	// such rather than as out of range.
	if err := ne.Validate(); err != nil {
		e, ok := errors.AsType[*ticketrush.Error](err)
		if !ok || len(e.Fields) == 0 {
			return ticketrush.NewEvent{}, err
		}
		for field, msg := range e.Fields {
			f.Add(field, msg)
		}
	}
	if err := f.Err(); err != nil {
		return ticketrush.NewEvent{}, err
	}
	return ne, nil
}
