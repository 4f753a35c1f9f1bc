package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// hostile is a malformed or hostile request, written byte for byte to the
// server's socket, and the status it must get.
type hostile struct {
	name   string
	method string
	target string   // the request-target, sent as is
	header []string // raw header lines, without CRLF
	body   string
	// chunked sends the body with Transfer-Encoding: chunked instead of
	// Content-Length.
	chunked bool
	// raw, when set, is sent instead of everything above.
	raw string
	// halfClose shuts the writing side after the request, so a body
	// shorter than announced ends. Go's server takes the end of input for
	// a client that left, and cancels a request still running.
	halfClose bool
	want      int
}

// hostileRequests is the table. Placeholders: {event} an event, {res} a
// reservation of visitor {token}, {other} another visitor, {admin} the admin
// token, {missing} an event id that does not exist.
func hostileRequests() []hostile {
	const ok = `{"event_id":{event},"amount":1}`
	reserve := func(name, body string, want int, header ...string) hostile {
		return hostile{name: name, method: "POST", target: "/api/reserve",
			header: append([]string{"Content-Type: application/json"}, header...), body: body, want: want}
	}
	get := func(name, target string, want int, header ...string) hostile {
		return hostile{name: name, method: "GET", target: target, header: header, want: want}
	}
	nested := func(open, close string, n int) string {
		return `{"event_id":{event},"amount":1,"x":` + strings.Repeat(open, n) + strings.Repeat(close, n) + `}`
	}
	manyHeaders := func(n int) []string {
		h := make([]string, n)
		for i := range h {
			h[i] = fmt.Sprintf("X-Filler-%d: %s", i, strings.Repeat("f", 100))
		}
		return h
	}
	return []hostile{
		// Broken or non-object JSON.
		reserve("EmptyBody", "", 400),
		reserve("Truncated", `{"event_id":{event},"amount":1`, 400),
		reserve("TrailingGarbage", ok+`garbage`, 400),
		reserve("TwoObjects", ok+ok, 400),
		reserve("Array", `[`+ok+`]`, 400),
		reserve("String", `"reserve"`, 400),
		reserve("Null", `null`, 400),
		reserve("BareNumber", `42`, 400),
		reserve("SingleQuotes", `{'event_id':{event},'amount':1}`, 400),
		reserve("TrailingComma", `{"event_id":{event},"amount":1,}`, 400),
		reserve("NaN", `{"event_id":{event},"amount":NaN}`, 400),
		// Wrong types.
		reserve("AmountString", `{"event_id":{event},"amount":"1"}`, 422),
		reserve("AmountNull", `{"event_id":{event},"amount":null}`, 422),
		reserve("AmountArray", `{"event_id":{event},"amount":[1]}`, 422),
		reserve("EventIDBool", `{"event_id":true,"amount":1}`, 422),
		reserve("EventIDObject", `{"event_id":{"id":{event}},"amount":1}`, 422),
		reserve("MissingAmount", `{"event_id":{event}}`, 422),
		reserve("EmptyObject", `{}`, 422),
		// Numbers past int64, floats and exponents, out of range.
		reserve("EventIDPastInt64", `{"event_id":99999999999999999999,"amount":1}`, 422),
		reserve("AmountBelowInt64", `{"event_id":{event},"amount":-9223372036854775809}`, 422),
		reserve("EventID1000Digits", `{"event_id":`+strings.Repeat("9", 1000)+`,"amount":1}`, 422),
		reserve("AmountFloat", `{"event_id":{event},"amount":1.0}`, 422),
		reserve("AmountExponent", `{"event_id":{event},"amount":1e0}`, 422),
		reserve("EventIDExponent", `{"event_id":{event}E0,"amount":1}`, 422),
		reserve("AmountHugeExponent", `{"event_id":{event},"amount":1e400}`, 422),
		reserve("AmountNegative", `{"event_id":{event},"amount":-1}`, 422),
		reserve("AmountZero", `{"event_id":{event},"amount":0}`, 422),
		reserve("AmountOverLimit", `{"event_id":{event},"amount":10001}`, 422),
		// Duplicate keys: a proxy and the server could read different
		// requests from one body.
		reserve("DuplicateAmount", `{"event_id":{event},"amount":1,"amount":2}`, 400),
		reserve("DuplicateEventID", `{"event_id":{missing},"amount":1,"event_id":{event}}`, 400),
		reserve("DuplicateEscapedKey", `{"event_id":{event},"amount":1,"\u0061mount":1}`, 400),
		// Huge and deeply nested bodies.
		reserve("Body70KiB", `{"event_id":{event},"amount":1,"x":"`+strings.Repeat("A", 70<<10)+`"}`, 413),
		{name: "Body1MiBChunked", method: "POST", target: "/api/reserve", header: []string{"Content-Type: application/json"},
			body: `{"event_id":{event},"amount":1,"x":"` + strings.Repeat("A", 1<<20) + `"}`, chunked: true, want: 413},
		reserve("NestedArrays10000", nested("[", "]", 10000), 400),
		reserve("NestedObjects100", `{"event_id":{event},"amount":1,"x":`+strings.Repeat(`{"a":`, 100)+`1`+strings.Repeat(`}`, 100)+`}`, 400),
		// Invalid UTF-8.
		reserve("InvalidUTF8Value", `{"event_id":{event},"amount":1,"n":"`+"\xff\xfe"+`"}`, 400),
		reserve("InvalidUTF8Key", `{"event_id":{event},"amount":1,"`+"\xc3\x28"+`":1}`, 400),
		reserve("OverlongSlash", `{"event_id":{event},"amount":1,"n":"`+"\xc0\xaf"+`"}`, 400),
		// Visitor tokens.
		reserve("TokenNotUUID", ok, 400, "Visitor-Token: not-a-uuid"),
		reserve("Token8KiB", ok, 400, "Visitor-Token: "+strings.Repeat("a", 8<<10)),
		reserve("TokenTwice", ok, 400, "Visitor-Token: {token}", "Visitor-Token: {other}"),
		reserve("TokenLuaInjection", ok, 400, `Visitor-Token: "]) redis.call('FLUSHALL') --`),
		get("TokenSQLInjection", "/api/reservations/{res}", 400, "Visitor-Token: ' OR '1'='1' --"),
		get("TokenMissing", "/api/reservations/{res}", 400),
		get("TokenEncodedCRLF", "/api/reservations/{res}", 400, "Visitor-Token: {token}%0d%0aSet-Cookie:%20x=1"),
		// Idempotency keys.
		reserve("KeyOversized", ok, 422, "Idempotency-Key: "+strings.Repeat("k", 129)),
		reserve("KeyWithSpace", ok, 422, "Idempotency-Key: a b"),
		reserve("KeyNonASCII", ok, 422, "Idempotency-Key: ключ"),
		reserve("KeyTwice", ok, 422, "Idempotency-Key: a", "Idempotency-Key: b"),
		// A valid key carrying code reaches the store, which must treat it
		// as data (the event does not exist, so nothing changes).
		reserve("KeyLuaInjection", `{"event_id":{missing},"amount":1}`, 404, "Visitor-Token: {token}", "Idempotency-Key: redis.call('FLUSHALL');--"),
		reserve("KeySQLInjection", `{"event_id":{missing},"amount":1}`, 404, "Visitor-Token: {token}", "Idempotency-Key: ');DROP/**/TABLE/**/reservations;--"),
		// A key without a visitor could never make a retry safe.
		reserve("KeyWithoutToken", ok, 400, "Idempotency-Key: retry-1"),
		// What a hostile page can make a browser send without a CORS
		// preflight: no Content-Type, or one from another site.
		{name: "NoContentType", method: "POST", target: "/api/reserve", body: ok, want: 415},
		reserve("CrossSiteOrigin", ok, 403, "Origin: https://evil.example", "Sec-Fetch-Site: cross-site"),
		// Path tricks.
		get("DotDotPath", "/api/reservations/../events", 404),
		get("EncodedDotDot", "/api/reservations/%2e%2e/events", 404),
		get("EncodedDotDotID", "/api/reservations/%2e%2e", 422, "Visitor-Token: {token}"),
		get("DoubleSlashes", "//api//events", 404),
		get("AdminTraversal", "/api/admin/events/{event}/stats/../../../../events", 404),
		get("IDZero", "/api/events/0", 422),
		get("IDNegative", "/api/events/-1", 422),
		get("IDExponent", "/api/events/1e3", 422),
		get("IDPastInt64", "/api/events/99999999999999999999", 422),
		get("IDEncodedSpace", "/api/events/1%20", 422),
		get("IDEncodedNUL", "/api/events/1%00", 422),
		get("IDEncodedCRLF", "/api/events/1%0d%0aSet-Cookie:%20x=1", 422),
		get("IDEncodedSlash", "/api/reservations/{res}%2f..%2f1", 422, "Visitor-Token: {token}"),
		{name: "IDRawSpace", raw: "GET /api/events/1 2 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", want: 400},
		// Wrong methods.
		{name: "PutReserve", method: "PUT", target: "/api/reserve", header: []string{"Content-Type: application/json"}, body: ok, want: 405},
		{name: "DeleteEvents", method: "DELETE", target: "/api/events", want: 405},
		{name: "PatchReservation", method: "PATCH", target: "/api/reservations/{res}", header: []string{"Visitor-Token: {token}"}, body: `{}`, want: 405},
		get("GetPurchase", "/api/purchase", 405),
		{name: "PostEvent", method: "POST", target: "/api/events/{event}", body: ok, want: 405},
		{name: "MadeUpMethod", method: "BREW", target: "/api/events", want: 405},
		{name: "Trace", method: "TRACE", target: "/api/events", want: 405},
		// Injection strings and someone else's reservation.
		reserve("SQLInEventID", `{"event_id":"1; DROP TABLE events; --","amount":1}`, 422),
		reserve("LuaInAmount", `{"event_id":{event},"amount":"1) redis.call('flushall')"}`, 422),
		{name: "SQLNameNoToken", method: "POST", target: "/api/admin/events", header: []string{"Content-Type: application/json"},
			body: `{"name":"x'); DROP TABLE events; --","ticket_quantity":5}`, want: 401},
		{name: "SQLNameWrongToken", method: "POST", target: "/api/admin/events", header: []string{"Content-Type: application/json", "Authorization: Bearer {admin}x"},
			body: `{"name":"x'); DROP TABLE events; --","ticket_quantity":5}`, want: 401},
		{name: "SQLNameInvalidEvent", method: "POST", target: "/api/admin/events", header: []string{"Content-Type: application/json", "Authorization: Bearer {admin}"},
			body: `{"name":"x'); DROP TABLE events; --","ticket_quantity":0}`, want: 422},
		{name: "AdminBasicAuth", method: "GET", target: "/api/admin/events/{event}/stats", header: []string{"Authorization: Basic YWRtaW46YWRtaW4="}, want: 401},
		{name: "OthersCancel", method: "DELETE", target: "/api/reservations/{res}", header: []string{"Visitor-Token: {other}"}, want: 404},
		{name: "OthersPurchase", method: "POST", target: "/api/purchase", header: []string{"Visitor-Token: {other}", "Content-Type: application/json"},
			body: `{"reservation_id":{res}}`, want: 404},
		get("OthersRead", "/api/reservations/{res}", 404, "Visitor-Token: {other}"),
		// Content types.
		reserve("TextPlain", ok, 415, "Content-Type: text/plain"),
		{name: "XML", method: "POST", target: "/api/reserve", header: []string{"Content-Type: application/xml"}, body: `<reserve event_id="{event}" amount="1"/>`, want: 415},
		{name: "Multipart", method: "POST", target: "/api/reserve", header: []string{"Content-Type: multipart/form-data; boundary=x"}, body: "--x\r\n\r\n" + ok + "\r\n--x--", want: 415},
		{name: "JSONLatin1", method: "POST", target: "/api/reserve", header: []string{"Content-Type: application/json; charset=latin1"}, body: ok, want: 415},
		// Framing: Go's server refuses what it cannot frame safely, before
		// any handler runs; the serve listener makes those answers JSON
		// and 4xx too.
		{name: "HeadersOver16KiB", method: "GET", target: "/api/events", header: []string{"X-Big: " + strings.Repeat("b", 64<<10)}, want: 431},
		{name: "ManyHeaders", method: "GET", target: "/api/events", header: manyHeaders(400), want: 431},
		{name: "NoHost", raw: "GET /api/events HTTP/1.1\r\nConnection: close\r\n\r\n", want: 400},
		{name: "HeaderBareCR", raw: "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nVisitor-Token: a\rSet-Cookie: x=1\r\nConnection: close\r\n\r\n", want: 400},
		// Go joins a folded line to the header before it: the token
		// becomes invalid rather than a second header being smuggled.
		{name: "HeaderFolded", raw: "GET /api/reservations/{res} HTTP/1.1\r\nHost: 127.0.0.1\r\nVisitor-Token: {token}\r\n Set-Cookie: x=1\r\nConnection: close\r\n\r\n", want: 400},
		{name: "ContentLengthTwice", raw: "POST /api/reserve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 31\r\nContent-Length: 5\r\nConnection: close\r\n\r\n" + ok, want: 400},
		// Both framings: Go reads the chunked body and ignores the length,
		// so a front proxy that trusted Content-Length could not smuggle a
		// second request through.
		{name: "ChunkedAndContentLength", raw: "POST /api/reserve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\nConnection: close\r\n\r\n0\r\n\r\n", want: 400},
		{name: "HTTP09RequestLine", raw: "GET /api/events\r\n\r\n", want: 400},
		{name: "HTTP2RequestLine", raw: "GET /api/events HTTP/2.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", want: 400},
		{name: "HTTP3RequestLine", raw: "GET /api/events HTTP/3.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", want: 400},
		{name: "TransferEncodingGzipChunked", raw: "POST /api/reserve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n", want: 400},
		{name: "InvalidHeaderName", raw: "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Name: x\r\nConnection: close\r\n\r\n", want: 400},
		{name: "TwoHosts", raw: "GET /api/events HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: example.com\r\nConnection: close\r\n\r\n", want: 400},
		{name: "BadChunkSize", raw: "POST /api/reserve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n" + ok + "\r\n0\r\n\r\n", want: 400},
		{name: "ShortBody", raw: "POST /api/reserve HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 500\r\nConnection: close\r\n\r\n" + ok, halfClose: true, want: 400},
	}
}

// hostileResult is what the server answered one hostile request.
type hostileResult struct {
	status int
	header http.Header
	body   []byte
}

// sendRaw writes req to a fresh connection to addr, optionally closes the
// writing side, and reads one response.
func sendRaw(addr, req string, halfClose bool) (hostileResult, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return hostileResult{}, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	go func() {
		// The server may answer (413, 431) and close before reading it
		// all: a failed write is expected then.
		io.WriteString(conn, req)
		if halfClose {
			conn.(*net.TCPConn).CloseWrite()
		}
	}()
	totals.requests.Add(1)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return hostileResult{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return hostileResult{}, err
	}
	return hostileResult{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// build returns the bytes of h on the wire.
func (h hostile) build(rep *strings.Replacer) string {
	if h.raw != "" {
		return rep.Replace(h.raw)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", h.method, rep.Replace(h.target))
	for _, l := range h.header {
		b.WriteString(rep.Replace(l))
		b.WriteString("\r\n")
	}
	body := rep.Replace(h.body)
	switch {
	case h.chunked:
		b.WriteString("Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
		for len(body) > 0 {
			n := min(len(body), 16<<10)
			fmt.Fprintf(&b, "%x\r\n%s\r\n", n, body[:n])
			body = body[n:]
		}
		b.WriteString("0\r\n\r\n")
		return b.String()
	case body != "" || h.method == "POST" || h.method == "PUT" || h.method == "PATCH":
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(body))
	}
	b.WriteString("Connection: close\r\n\r\n")
	b.WriteString(body)
	return b.String()
}

// TestHostileHTTP sends every hostile request to a real "ticketrush serve"
// on each backend: each gets its 4xx, a JSON error body unless Go's server
// answered before the API, never a 5xx; and nothing changes: the event
// list, the event's stats and the reservation read the same afterwards.
func TestHostileHTTP(t *testing.T) {
	reqs := hostileRequests()
	if len(reqs) < 40 {
		t.Fatalf("only %d hostile requests", len(reqs))
	}
	for _, b := range []backend{sqliteBackend, postgresBackend, redisBackend} {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db, _ := b.newDB(t)
			testHostile(t, db, reqs)
		})
	}
}

// leaks are fragments of internals an error body must never show.
var leaks = []string{"sql", "pgx", "pgconn", "postgres", "redis", "lua", "goroutine", "panic", ".go:", "SQLSTATE", "runtime error"}

func testHostile(t *testing.T, db string, reqs []hostile) {
	srv := startServe(t, db)
	c := newClient(t, srv.URL, 4, 30*time.Second)
	ev := c.createEvent(t, "Hostile", 100)
	token, other := uuid.NewString(), uuid.NewString()
	var res struct{ Data wireReservation }
	c.must(t, http.StatusCreated, "POST", "/api/reserve", visitor(token), fmt.Sprintf(`{"event_id":%d,"amount":2}`, ev.ID), &res)
	rep := strings.NewReplacer("{event}", fmt.Sprint(ev.ID), "{res}", fmt.Sprint(res.Data.ID),
		"{token}", token, "{other}", other, "{admin}", adminToken, "{missing}", "9007199254740991")

	snapshot := func() string {
		events := c.must(t, http.StatusOK, "GET", "/api/events", nil, "", nil)
		stats := c.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/admin/events/%d/stats", ev.ID), admin(), "", nil)
		r := c.must(t, http.StatusOK, "GET", fmt.Sprintf("/api/reservations/%d", res.Data.ID), visitor(token), "", nil)
		return string(events.body) + string(stats.body) + string(r.body)
	}
	before := snapshot()

	byStatus := map[int]int{}
	for _, h := range reqs {
		t.Run(h.name, func(t *testing.T) {
			got, err := sendRaw(srv.Addr, h.build(rep), h.halfClose)
			if err != nil {
				t.Fatalf("no answer: %v", err)
			}
			byStatus[got.status]++
			if got.status >= 500 {
				t.Fatalf("status %d: %s %s", got.status, got.header, short(got.body))
			}
			if got.status != h.want {
				t.Errorf("status %d, want %d: %s %s", got.status, h.want, got.header, short(got.body))
			}
			var e wireError
			if ct := got.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json: %s", ct, short(got.body))
			}
			if err := json.Unmarshal(got.body, &e); err != nil || e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
				t.Errorf("body is no JSON error: %s", short(got.body))
			}
			lower := bytes.ToLower(got.body)
			for _, l := range leaks {
				if bytes.Contains(lower, []byte(strings.ToLower(l))) {
					t.Errorf("error body shows %q: %s", l, short(got.body))
				}
			}
		})
	}
	fault("hostile request", int64(len(reqs)))

	if after := snapshot(); after != before {
		t.Errorf("hostile requests changed state:\nbefore %s\nafter  %s", before, after)
	}
	if strings.Contains(srv.log.String(), "level=ERROR") {
		t.Errorf("hostile requests logged errors:\n%s", srv.log.tail(3000))
	}
	t.Logf("%d hostile requests: statuses %v; state unchanged", len(reqs), byStatus)
}
