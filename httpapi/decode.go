package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ticketrush/ticketrush"
)

// MaxBodyBytes caps every request body. The largest valid body (an event
// with a 200-character name) is far below it.
const MaxBodyBytes = 64 << 10

// maxDepth caps nesting in a body. Valid bodies are flat; the cap bounds
// the scanner's recursion on a hostile one.
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

// jsonKind is the type of a top-level value of a request object.
type jsonKind uint8

const (
	kindNull jsonKind = iota
	kindBool
	kindNumber
	kindString
	kindObject
	kindArray
)

// jsonValue is one top-level member of a request object. Nested objects and
// arrays are checked for syntax and duplicate keys but not kept: no field
// takes one.
type jsonValue struct {
	kind jsonKind
	num  json.Number
	str  string
}

// decodeObject parses body as exactly one JSON object and returns its
// members. It refuses, as invalid_json, anything else: invalid UTF-8,
// another type at the top, trailing data, a repeated key at any level and
// nesting deeper than maxDepth. It scans the bytes itself rather than
// unmarshalling into a struct: encoding/json silently keeps the last of
// duplicate keys, which lets a proxy and this server read different
// requests from one body, and walking json.Decoder tokens costs several
// times more on the hottest path of the service.
func decodeObject(body []byte) (map[string]jsonValue, error) {
	if !utf8.Valid(body) {
		return nil, errInvalidJSON("The request body must be valid UTF-8.")
	}
	s := scanner{b: body}
	s.space()
	if s.peek() != '{' {
		return nil, errInvalidJSON("The request body must be a JSON object.")
	}
	members := make(map[string]jsonValue, 4)
	if err := s.object(1, members); err != nil {
		return nil, err
	}
	s.space()
	if s.i != len(s.b) {
		return nil, errInvalidJSON("The request body must hold exactly one JSON object.")
	}
	return members, nil
}

// scanner reads JSON (RFC 8259) from b, already known to be valid UTF-8.
type scanner struct {
	b []byte
	i int
}

var errSyntax = errInvalidJSON("The request body is not valid JSON.")

// peek returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// object reads an object at s.i, at the given depth (the body's object is
// 1). With members non-nil it keeps each member's value there; nested
// objects only track their keys, to refuse repeats.
func (s *scanner) object(depth int, members map[string]jsonValue) error {
	if depth > maxDepth {
		return errInvalidJSON("The request body is nested too deeply.")
	}
	s.i++ // '{'
	var seen map[string]struct{}
	s.space()
	if s.peek() == '}' {
		s.i++
		return nil
	}
	for {
		s.space()
		if s.peek() != '"' {
			return errSyntax
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		s.space()
		if s.peek() != ':' {
			return errSyntax
		}
		s.i++
		s.space()
		v, err := s.value(depth)
		if err != nil {
			return err
		}
		if members != nil {
			if _, dup := members[key]; dup {
				return errDuplicateKey(key)
			}
			members[key] = v
		} else {
			if seen == nil {
				seen = make(map[string]struct{})
			}
			if _, dup := seen[key]; dup {
				return errDuplicateKey(key)
			}
			seen[key] = struct{}{}
		}
		s.space()
		switch s.peek() {
		case ',':
			s.i++
		case '}':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// array reads an array at s.i.
func (s *scanner) array(depth int) error {
	if depth > maxDepth {
		return errInvalidJSON("The request body is nested too deeply.")
	}
	s.i++ // '['
	s.space()
	if s.peek() == ']' {
		s.i++
		return nil
	}
	for {
		s.space()
		if _, err := s.value(depth); err != nil {
			return err
		}
		s.space()
		switch s.peek() {
		case ',':
			s.i++
		case ']':
			s.i++
			return nil
		default:
			return errSyntax
		}
	}
}

// value reads any value at s.i, inside a container at depth.
func (s *scanner) value(depth int) (jsonValue, error) {
	switch c := s.peek(); {
	case c == '{':
		return jsonValue{kind: kindObject}, s.object(depth+1, nil)
	case c == '[':
		return jsonValue{kind: kindArray}, s.array(depth + 1)
	case c == '"':
		str, err := s.str()
		return jsonValue{kind: kindString, str: str}, err
	case c == 't':
		return jsonValue{kind: kindBool}, s.literal("true")
	case c == 'f':
		return jsonValue{kind: kindBool}, s.literal("false")
	case c == 'n':
		return jsonValue{kind: kindNull}, s.literal("null")
	case c == '-' || c >= '0' && c <= '9':
		n, err := s.number()
		return jsonValue{kind: kindNumber, num: n}, err
	}
	return jsonValue{}, errSyntax
}

func (s *scanner) literal(lit string) error {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return errSyntax
	}
	s.i += len(lit)
	return nil
}

// number reads -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? and returns
// its text; whether it is an acceptable integer is the field's business.
func (s *scanner) number() (json.Number, error) {
	start := s.i
	if s.peek() == '-' {
		s.i++
	}
	switch c := s.peek(); {
	case c == '0':
		s.i++
	case c >= '1' && c <= '9':
		s.digits()
	default:
		return "", errSyntax
	}
	if s.peek() == '.' {
		s.i++
		if s.digits() == 0 {
			return "", errSyntax
		}
	}
	if c := s.peek(); c == 'e' || c == 'E' {
		s.i++
		if c := s.peek(); c == '+' || c == '-' {
			s.i++
		}
		if s.digits() == 0 {
			return "", errSyntax
		}
	}
	return json.Number(s.b[start:s.i]), nil
}

func (s *scanner) digits() int {
	start := s.i
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		s.i++
	}
	return s.i - start
}

// str reads a string at s.i. Strings without escapes, nearly all of them,
// are sliced out directly; the rare escaped one is left to encoding/json so
// that escapes (surrogate pairs included) mean exactly what they mean
// there.
func (s *scanner) str() (string, error) {
	start := s.i
	s.i++ // '"'
	escaped := false
	for {
		if s.i >= len(s.b) {
			return "", errSyntax
		}
		c := s.b[s.i]
		switch {
		case c == '"':
			s.i++
			if !escaped {
				return string(s.b[start+1 : s.i-1]), nil
			}
			var out string
			if err := json.Unmarshal(s.b[start:s.i], &out); err != nil {
				return "", errSyntax
			}
			return out, nil
		case c == '\\':
			escaped = true
			s.i++
			if s.i >= len(s.b) {
				return "", errSyntax
			}
			switch s.b[s.i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				s.i++
			case 'u':
				if s.i+4 >= len(s.b) {
					return "", errSyntax
				}
				for _, h := range s.b[s.i+1 : s.i+5] {
					if !isHex(h) {
						return "", errSyntax
					}
				}
				s.i += 5
			default:
				return "", errSyntax
			}
		case c < 0x20:
			// Control characters must be escaped inside a JSON string.
			return "", errSyntax
		default:
			s.i++
		}
	}
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func errMalformed(error) error {
	return errInvalidJSON("The request body is not valid JSON.")
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
)

// intField reads a required integer member in [lo, hi]. It accepts only
// JSON integers: 1.0, 1e3 and -0.5 are refused even when their value is a
// whole number, so one request has one meaning in every JSON library.
func intField(m map[string]jsonValue, v ticketrush.ValidationError, name string, lo, hi int64, rangeMsg string) int64 {
	val, ok := m[name]
	if !ok {
		v.Add(name, msgRequired)
		return 0
	}
	return intValue(val, v, name, lo, hi, rangeMsg)
}

func intValue(val jsonValue, v ticketrush.ValidationError, name string, lo, hi int64, rangeMsg string) int64 {
	if val.kind != kindNumber {
		v.Add(name, msgInteger)
		return 0
	}
	s := string(val.num)
	if !isJSONInteger(s) {
		v.Add(name, msgInteger)
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < lo || n > hi {
		v.Add(name, rangeMsg)
		return 0
	}
	return n
}

// isJSONInteger reports whether s is an integer in JSON's grammar:
// -?(0|[1-9][0-9]*), no fraction, no exponent.
func isJSONInteger(s string) bool {
	if strings.HasPrefix(s, "-") {
		s = s[1:]
	}
	if s == "" || (s[0] == '0' && len(s) > 1) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

const (
	msgPositiveID = "must be a positive integer"
	msgAmount     = "must be an integer from 1 to 10000"
)

// decodeReserve decodes and validates the body of POST /api/reserve. It
// returns a valid request or a *ticketrush.Error with a 4xx code.
func decodeReserve(body []byte) (eventID, amount int64, err error) {
	m, err := decodeObject(body)
	if err != nil {
		return 0, 0, err
	}
	v := ticketrush.ValidationError{}
	eventID = intField(m, v, "event_id", 1, 1<<63-1, msgPositiveID)
	amount = intField(m, v, "amount", 1, ticketrush.MaxAmount, msgAmount)
	if err := v.Err(); err != nil {
		return 0, 0, err
	}
	return eventID, amount, nil
}

// decodePurchase decodes and validates the body of POST /api/purchase. It
// returns a valid reservation id or a *ticketrush.Error with a 4xx code.
func decodePurchase(body []byte) (reservationID int64, err error) {
	m, err := decodeObject(body)
	if err != nil {
		return 0, err
	}
	v := ticketrush.ValidationError{}
	reservationID = intField(m, v, "reservation_id", 1, 1<<63-1, msgPositiveID)
	if err := v.Err(); err != nil {
		return 0, err
	}
	return reservationID, nil
}

// Years a sale may start in: they keep every backend's time column and the
// wire format (four-digit years) exact.
const (
	minSaleYear = 1970
	maxSaleYear = 9999
)

// decodeCreateEvent decodes and validates the body of POST
// /api/admin/events. defaultHold fills hold_seconds when the body omits it
// (or sends null). It returns an event that passes NewEvent.Validate or a
// *ticketrush.Error with a 4xx code.
func decodeCreateEvent(body []byte, defaultHold int64) (ticketrush.NewEvent, error) {
	m, err := decodeObject(body)
	if err != nil {
		return ticketrush.NewEvent{}, err
	}
	v := ticketrush.ValidationError{}
	var ne ticketrush.NewEvent

	switch val, ok := m["name"]; {
	case !ok:
		v.Add("name", msgRequired)
	case val.kind != kindString:
		v.Add("name", msgString)
	default:
		ne.Name = strings.TrimSpace(val.str)
		if strings.IndexFunc(ne.Name, unicode.IsControl) >= 0 {
			// Control characters (NUL above all, which PostgreSQL text
			// refuses) have no place in a name shown to visitors.
			v.Add("name", "must not contain control characters")
		}
	}
	ne.TicketQuantity = intField(m, v, "ticket_quantity", 1, ticketrush.MaxTicketQuantity,
		"must be an integer from 1 to 100000000")

	ne.HoldSeconds = defaultHold
	if val, ok := m["hold_seconds"]; ok && val.kind != kindNull {
		ne.HoldSeconds = intValue(val, v, "hold_seconds", 1, ticketrush.MaxHoldSeconds,
			"must be an integer from 1 to 86400")
	}
	if val, ok := m["max_per_visitor"]; ok && val.kind != kindNull {
		ne.MaxPerVisitor = intValue(val, v, "max_per_visitor", 0, ticketrush.MaxTicketQuantity,
			"must be an integer from 0 (no limit) to 100000000")
	}
	if val, ok := m["sale_starts_at"]; ok && val.kind != kindNull {
		const msg = "must be an RFC 3339 time between the years 1970 and 9999"
		if val.kind != kindString {
			v.Add("sale_starts_at", msg)
		} else if t, err := time.Parse(time.RFC3339Nano, val.str); err != nil {
			v.Add("sale_starts_at", msg)
		} else if t = t.UTC().Truncate(time.Microsecond); t.Year() < minSaleYear || t.Year() > maxSaleYear {
			v.Add("sale_starts_at", msg)
		} else {
			ne.SaleStartsAt = &t
		}
	}
	// The domain's own rules have the last word (name length, for one);
	// Add keeps the first message, so a missing or mistyped field reads as
	// such rather than as out of range.
	if err := ne.Validate(); err != nil {
		e, ok := errors.AsType[*ticketrush.Error](err)
		if !ok || len(e.Fields) == 0 {
			return ticketrush.NewEvent{}, err
		}
		for field, msg := range e.Fields {
			v.Add(field, msg)
		}
	}
	if err := v.Err(); err != nil {
		return ticketrush.NewEvent{}, err
	}
	return ne, nil
}
