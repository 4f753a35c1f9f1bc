package httpapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// hostileRequest is a malformed or hostile request and the status it must
// get. Placeholders as in apiCases.
type hostileRequest struct {
	name   string
	method string
	target string // the request-target, sent as is
	header http.Header
	body   string
	status int
}

func hostileRequests() []hostileRequest {
	json := http.Header{"Content-Type": {"application/json"}}
	withToken := func(h http.Header) http.Header {
		h = h.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set("Visitor-Token", "{token}")
		return h
	}
	deep := func(n int) string {
		return `{"event_id":{event},"amount":1,"x":` + strings.Repeat("[", n) + strings.Repeat("]", n) + `}`
	}
	manyKeys := func() string {
		var b strings.Builder
		b.WriteString(`{"event_id":{event}`)
		for i := 0; b.Len() < 60000; i++ {
			fmt.Fprintf(&b, `,"k%d":%d`, i, i)
		}
		return b.String() + "}"
	}
	reserve := func(name, body string, status int) hostileRequest {
		return hostileRequest{name, "POST", "/api/reserve", json, body, status}
	}
	return []hostileRequest{
		// Broken or non-object JSON.
		reserve("Truncated", `{"event_id":{event},"amount":1`, 400),
		reserve("ExtraBrace", `{"event_id":{event},"amount":1}}`, 400),
		reserve("TrailingGarbage", `{"event_id":{event},"amount":1}garbage`, 400),
		reserve("TwoObjects", `{"event_id":{event},"amount":1} {"event_id":{event},"amount":1}`, 400),
		reserve("Array", `[]`, 400),
		reserve("Number", `123`, 400),
		reserve("Bool", `true`, 400),
		reserve("SingleQuotes", `{'event_id':{event},'amount':1}`, 400),
		reserve("TrailingComma", `{"event_id":{event},"amount":1,}`, 400),
		reserve("Comment", `{"event_id":{event},/*x*/"amount":1}`, 400),
		reserve("HexNumber", `{"event_id":{event},"amount":0x1}`, 400),
		reserve("NaN", `{"event_id":{event},"amount":NaN}`, 400),
		reserve("Infinity", `{"event_id":{event},"amount":Infinity}`, 400),
		reserve("PlusSign", `{"event_id":{event},"amount":+1}`, 400),
		reserve("LeadingZero", `{"event_id":{event},"amount":01}`, 400),
		reserve("UTF8BOM", "\xef\xbb\xbf"+`{"event_id":{event},"amount":1}`, 400),
		reserve("InvalidUTF8", `{"event_id":{event},"amount":1,"n":"`+"\xff\xfe"+`"}`, 400),
		reserve("InvalidUTF8Key", `{"event_id":{event},"amount":1,"`+"\xc0\x80"+`":1}`, 400),
		reserve("NULByte", "{\"event_id\":{event},\x00\"amount\":1}", 400),
		reserve("BadEscape", `{"event_id":{event},"amount":1,"n":"\x"}`, 400),
		// Duplicate keys, plain, escaped and nested.
		reserve("DuplicateKey", `{"event_id":{event},"amount":1,"amount":10000}`, 400),
		reserve("DuplicateKeyEscaped", `{"event_id":{event},"amount":1,"\u0061mount":2}`, 400),
		reserve("DuplicateKeyNested", `{"event_id":{event},"amount":1,"x":{"a":1,"a":2}}`, 400),
		reserve("DuplicateKeyDeep", `{"event_id":{event},"amount":1,"x":[{"y":[{"b":1,"b":1}]}]}`, 400),
		// Deep and huge.
		reserve("NestedTooDeep", deep(40), 400),
		reserve("NestedVeryDeep", deep(20000), 400),
		reserve("ManyKeysNoAmount", manyKeys(), 422),
		reserve("Huge", `{"event_id":{event},"amount":1,"x":"`+strings.Repeat("A", 1<<20)+`"}`, 413),
		// Wrong types and numbers out of range.
		reserve("AmountString", `{"event_id":{event},"amount":"1"}`, 422),
		reserve("AmountArray", `{"event_id":{event},"amount":[1]}`, 422),
		reserve("AmountObject", `{"event_id":{event},"amount":{"n":1}}`, 422),
		reserve("AmountNull", `{"event_id":{event},"amount":null}`, 422),
		reserve("AmountFloat", `{"event_id":{event},"amount":2.5}`, 422),
		reserve("AmountExponent", `{"event_id":{event},"amount":1E1}`, 422),
		reserve("AmountNegativeZero", `{"event_id":{event},"amount":-0}`, 422),
		reserve("AmountPastInt64", `{"event_id":{event},"amount":99999999999999999999999999}`, 422),
		reserve("AmountHugeExponent", `{"event_id":{event},"amount":1e999999999}`, 422),
		reserve("EventIDBelowInt64", `{"event_id":-9223372036854775809,"amount":1}`, 422),
		reserve("EventIDMaxInt64", `{"event_id":9223372036854775807,"amount":1}`, 404),
		reserve("EventIDEscapedDigits", `{"event_id":"\u0031","amount":1}`, 422),
		reserve("EmptyKey", `{"":1}`, 422),
		// Injection strings.
		reserve("SQLInjectionID", `{"event_id":"1 OR 1=1","amount":1}`, 422),
		reserve("SQLInjectionDrop", `{"event_id":"1; DROP TABLE events;--","amount":1}`, 422),
		{"SQLInjectionToken", "GET", "/api/reservations/{res}", http.Header{"Visitor-Token": {"' OR '1'='1"}}, "", 400},
		{"SQLInjectionPath", "GET", "/api/events/1%20OR%201=1", nil, "", 422},
		{"SQLInjectionName", "POST", "/api/admin/events", json, `{"name":"x'); DROP TABLE events;--","ticket_quantity":5}`, 401},
		{"ScriptInjectionName", "POST", "/api/admin/events", http.Header{"Authorization": {"Bearer {admin}"}, "Content-Type": {"application/json"}}, `{"name":"<script>\u0000</script>","ticket_quantity":5}`, 422},
		// Tokens and keys.
		{"TokenTooLong", "POST", "/api/reserve", http.Header{"Content-Type": {"application/json"}, "Visitor-Token": {strings.Repeat("a", 8192)}}, `{"event_id":{event},"amount":1}`, 400},
		{"TokenNotHex", "POST", "/api/reserve", http.Header{"Content-Type": {"application/json"}, "Visitor-Token": {"g9439d95-5d3c-4c8e-9a57-1f0b2f6f1d7e"}}, `{"event_id":{event},"amount":1}`, 400},
		{"TokenBraces", "POST", "/api/reserve", http.Header{"Content-Type": {"application/json"}, "Visitor-Token": {"{c9439d95-5d3c-4c8e-9a57-1f0b2f6f1d7e}"}}, `{"event_id":{event},"amount":1}`, 400},
		{"TokenURN", "POST", "/api/reserve", http.Header{"Content-Type": {"application/json"}, "Visitor-Token": {"urn:uuid:c9439d95-5d3c-4c8e-9a57-1f0b2f6f1d7e"}}, `{"event_id":{event},"amount":1}`, 400},
		{"TokenNoDashes", "GET", "/api/reservations/{res}", http.Header{"Visitor-Token": {"c9439d955d3c4c8e9a571f0b2f6f1d7e"}}, "", 400},
		{"TokenControlChar", "GET", "/api/reservations/{res}", http.Header{"Visitor-Token": {"c9439d95-5d3c-4c8e-9a57-1f0b2f6f1d7\x00"}}, "", 400},
		{"TokenTwice", "POST", "/api/reserve", http.Header{"Content-Type": {"application/json"}, "Visitor-Token": {"{token}", "{other}"}}, `{"event_id":{event},"amount":1}`, 400},
		{"OthersReservation", "DELETE", "/api/reservations/{res}", http.Header{"Visitor-Token": {"{other}"}}, "", 404},
		{"OthersPurchase", "POST", "/api/purchase", http.Header{"Visitor-Token": {"{other}"}, "Content-Type": {"application/json"}}, `{"reservation_id":{res}}`, 404},
		{"IdempotencyKeyLong", "POST", "/api/reserve", http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {strings.Repeat("k", 8192)}}, `{"event_id":{event},"amount":1}`, 422},
		{"IdempotencyKeyUnicode", "POST", "/api/reserve", http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {"ключ"}}, `{"event_id":{event},"amount":1}`, 422},
		{"IdempotencyKeyTwice", "POST", "/api/reserve", http.Header{"Content-Type": {"application/json"}, "Idempotency-Key": {"a", "b"}}, `{"event_id":{event},"amount":1}`, 422},
		{"AdminTokenPrefix", "GET", "/api/admin/events/{event}/stats", http.Header{"Authorization": {"Bearer " + adminToken[:len(adminToken)-1]}}, "", 401},
		{"AdminTokenTwice", "GET", "/api/admin/events/{event}/stats", http.Header{"Authorization": {"Bearer {admin}", "Bearer {admin}"}}, "", 401},
		{"AdminTokenNoScheme", "GET", "/api/admin/events/{event}/stats", http.Header{"Authorization": {"{admin}"}}, "", 401},
		// Content types.
		// What a cross-site form or no-cors fetch can send without a CORS
		// preflight: no type, or text/plain.
		{"ContentTypeAbsent", "POST", "/api/reserve", nil, `{"event_id":{event},"amount":1}`, 415},
		{"ContentTypeTextPlain", "POST", "/api/reserve", http.Header{"Content-Type": {"text/plain;charset=UTF-8"}}, `{"event_id":{event},"amount":1}`, 415},
		{"ContentTypeXML", "POST", "/api/reserve", http.Header{"Content-Type": {"application/xml"}}, `{"event_id":{event},"amount":1}`, 415},
		{"ContentTypeForm", "POST", "/api/reserve", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, `event_id={event}&amount=1`, 415},
		{"ContentTypeUTF16", "POST", "/api/reserve", http.Header{"Content-Type": {"application/json; charset=utf-16"}}, `{"event_id":{event},"amount":1}`, 415},
		{"ContentTypeMalformed", "POST", "/api/reserve", http.Header{"Content-Type": {"application/json;;"}}, `{"event_id":{event},"amount":1}`, 415},
		{"ContentTypeTwice", "POST", "/api/reserve", http.Header{"Content-Type": {"application/json", "text/plain"}}, `{"event_id":{event},"amount":1}`, 415},
		// Path tricks.
		{"DotDot", "GET", "/api/events/{event}/../{event}", nil, "", 404},
		// An escaped slash stays inside its segment: the id is not a number.
		{"EncodedDotDot", "GET", "/api/events/..%2f..%2fetc%2fpasswd", nil, "", 422},
		{"EncodedSlash", "GET", "/api/events/1%2F2", nil, "", 422},
		{"DoubleSlash", "GET", "//api/events", nil, "", 404},
		{"TrailingSlash", "GET", "/api/events/", nil, "", 404},
		{"EncodedNUL", "GET", "/api/events/1%00", nil, "", 422},
		{"Semicolon", "GET", "/api/events/1;drop", nil, "", 422},
		{"UnicodeDigits", "GET", "/api/events/%D9%A1", nil, "", 422},
		{"PlusID", "GET", "/api/events/+1", nil, "", 422},
		{"HugeID", "GET", "/api/events/" + strings.Repeat("9", 4000), nil, "", 422},
		{"UpperCasePath", "GET", "/API/EVENTS", nil, "", 404},
		{"AdminTraversal", "GET", "/api/admin/../events", nil, "", 404},
		// Wrong methods.
		{"PatchReservation", "PATCH", "/api/reservations/{res}", withToken(nil), `{}`, 405},
		{"DeleteEvents", "DELETE", "/api/events", nil, "", 405},
		{"PutReserve", "PUT", "/api/reserve", json, `{"event_id":{event},"amount":1}`, 405},
		{"TraceEvents", "TRACE", "/api/events", nil, "", 405},
		{"OptionsReserve", "OPTIONS", "/api/reserve", nil, "", 405},
		{"MadeUpMethod", "BREW", "/api/events", nil, "", 405},
		{"GetPurchase", "GET", "/api/purchase", nil, "", 405},
		{"PostStats", "POST", "/api/admin/events/{event}/stats", nil, "", 405},
	}
}

// testHostile sends every hostile request: each gets a 4xx JSON error
// (never a 5xx) and nothing in the database changes.
func testHostile(t *testing.T, e *env) {
	ev := e.createEvent(t, `{"name":"Hostile","ticket_quantity":100,"max_per_visitor":50}`)
	res := e.reserve(t, ev.ID, 1, tokenA)
	rep := strings.NewReplacer(
		"{event}", fmt.Sprint(ev.ID), "{res}", fmt.Sprint(res.ID),
		"{token}", tokenA, "{other}", tokenB, "{admin}", adminToken)
	before := e.snapshot(t)
	reqs := hostileRequests()
	if len(reqs) < 40 {
		t.Fatalf("only %d hostile requests", len(reqs))
	}
	for _, h := range reqs {
		t.Run(h.name, func(t *testing.T) {
			r := httptest.NewRequestWithContext(t.Context(), h.method, "/", strings.NewReader(rep.Replace(h.body)))
			// Set the target after parsing so it reaches the server as is,
			// tricks included, as a raw client would send it.
			target := rep.Replace(h.target)
			r.RequestURI = target
			u, err := url.ParseRequestURI(target)
			if err != nil {
				t.Fatal(err)
			}
			r.URL = u
			if h.body == "" {
				r.Body = http.NoBody
				r.ContentLength = 0
			}
			for k, vs := range h.header {
				for _, v := range vs {
					r.Header.Add(k, rep.Replace(v))
				}
			}
			got := e.serve(t, r)
			if got.status >= 500 {
				t.Fatalf("%s %s → %d: %s", h.method, target, got.status, truncate(string(got.body), 300))
			}
			if got.status != h.status {
				t.Errorf("%s %s → %d, want %d: %s", h.method, target, got.status, h.status, truncate(string(got.body), 300))
			}
		})
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("hostile requests changed state:\nbefore %s\nafter  %s", before, after)
	}
	if log := e.log.String(); strings.Contains(log, "level=ERROR") {
		t.Errorf("hostile requests logged errors:\n%s", truncate(log, 2000))
	}
}
