package httpapi

import (
	"context"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

// Two visitors. Upper-case hex is accepted and normalized.
const (
	tokenA = "c9439d95-5d3c-4c8e-9a57-1f0b2f6f1d7e"
	tokenB = "0b8f6c2e-1a2b-4c3d-8e9f-a0b1c2d3e4f5"
)

// fixture creates the events and reservations the table refers to by
// placeholder, each case its own so the cases do not depend on each other.
func (e *env) fixture(t *testing.T) *strings.Replacer {
	t.Helper()
	id := func(n int64) string { return strconv.FormatInt(n, 10) }
	later := e.clock.Now().Add(time.Hour).Format(time.RFC3339Nano)
	v := map[string]string{
		"{token}": tokenA,
		"{other}": tokenB,
		"{event}": id(e.createEvent(t, `{"name":"Örnek Etkinlik","ticket_quantity":2000}`).ID),
		"{small}": id(e.createEvent(t, `{"name":"Small","ticket_quantity":5}`).ID),
		"{later}": id(e.createEvent(t, `{"name":"Later","ticket_quantity":10,"sale_starts_at":"`+later+`"}`).ID),
		"{limit}": id(e.createEvent(t, `{"name":"Limited","ticket_quantity":100,"max_per_visitor":2}`).ID),
		"{short}": id(e.createEvent(t, `{"name":"Short","ticket_quantity":10,"hold_seconds":1}`).ID),
	}
	event, _ := strconv.ParseInt(v["{event}"], 10, 64)
	short, _ := strconv.ParseInt(v["{short}"], 10, 64)
	for _, name := range []string{"{res_purchase}", "{res_read}", "{res_cancel}", "{res_purchased}", "{res_cancelled}"} {
		v[name] = id(e.reserve(t, event, 1, tokenA).ID)
	}
	v["{res_other}"] = id(e.reserve(t, event, 1, tokenB).ID)
	e.must(t, request{method: "POST", path: "/api/purchase", headers: visitor(tokenA),
		body: `{"reservation_id":` + v["{res_purchased}"] + `}`}, http.StatusOK)
	e.must(t, request{method: "DELETE", path: "/api/reservations/" + v["{res_cancelled}"], headers: visitor(tokenA)}, http.StatusOK)
	e.must(t, request{method: "POST", path: "/api/reserve",
		headers: map[string]string{"Visitor-Token": tokenA, "Idempotency-Key": "key-reuse"},
		body:    `{"event_id":` + v["{event}"] + `,"amount":1}`}, http.StatusCreated)
	v["{res_expired}"] = id(e.reserve(t, short, 1, tokenA).ID)
	v["{res_expired2}"] = id(e.reserve(t, short, 1, tokenA).ID)
	// The short event's holds last one second; every other hold five
	// minutes.
	e.clock.Advance(2 * time.Second)

	pairs := make([]string, 0, 2*len(v))
	for k, val := range v {
		pairs = append(pairs, k, val)
	}
	return strings.NewReplacer(pairs...)
}

type apiCase struct {
	name    string
	method  string
	path    string
	headers map[string]string
	body    string
	status  int
	code    string // the error code; "" for a success
}

func tok(t string) map[string]string { return visitor(t) }

// apiCases cover every row of both tables of the API's specification: each
// route's success and each error code it can answer with.
var apiCases = []apiCase{
	// The API table: each route's success.
	{"ListEvents", "GET", "/api/events", nil, "", 200, ""},
	{"GetEvent", "GET", "/api/events/{event}", nil, "", 200, ""},
	{"ReserveNewVisitor", "POST", "/api/reserve", nil, `{"event_id":{event},"amount":1}`, 201, ""},
	{"ReserveKnownVisitor", "POST", "/api/reserve", tok("{token}"), `{"event_id":{event},"amount":2}`, 201, ""},
	{"ReserveUpperCaseToken", "POST", "/api/reserve", tok(strings.ToUpper(tokenA)), `{"event_id":{event},"amount":1}`, 201, ""},
	{"ReserveIdempotencyKeyRepeat", "POST", "/api/reserve", map[string]string{"Visitor-Token": "{token}", "Idempotency-Key": "key-reuse"}, `{"event_id":{event},"amount":1}`, 201, ""},
	{"Purchase", "POST", "/api/purchase", tok("{token}"), `{"reservation_id":{res_purchase}}`, 200, ""},
	{"ReadReservation", "GET", "/api/reservations/{res_read}", tok("{token}"), "", 200, ""},
	{"Cancel", "DELETE", "/api/reservations/{res_cancel}", tok("{token}"), "", 200, ""},
	{"CancelCancelledAgain", "DELETE", "/api/reservations/{res_cancelled}", tok("{token}"), "", 200, ""},
	{"CreateEvent", "POST", "/api/admin/events", admin(), `{"name":"Concert","ticket_quantity":50,"hold_seconds":120,"max_per_visitor":4,"sale_starts_at":"2026-01-01T10:00:00+02:00"}`, 201, ""},
	{"CreateEventMinimal", "POST", "/api/admin/events", admin(), `{"name":"Minimal","ticket_quantity":1}`, 201, ""},
	{"CreateEventNulls", "POST", "/api/admin/events", admin(), `{"name":"Nulls","ticket_quantity":1,"hold_seconds":null,"max_per_visitor":null,"sale_starts_at":null}`, 201, ""},
	{"Stats", "GET", "/api/admin/events/{event}/stats", admin(), "", 200, ""},
	{"Healthz", "GET", "/healthz", nil, "", 200, ""},
	{"Readyz", "GET", "/readyz", nil, "", 200, ""},
	{"Metrics", "GET", "/metrics", nil, "", 200, ""},
	{"OpenAPI", "GET", "/api/openapi.yaml", nil, "", 200, ""},

	// The error table.
	{"ErrNotJSON", "POST", "/api/reserve", nil, `event_id=1&amount=1`, 400, ticketrush.EInvalidJSON},
	{"ErrArray", "POST", "/api/reserve", nil, `[{"event_id":{event},"amount":1}]`, 400, ticketrush.EInvalidJSON},
	{"ErrString", "POST", "/api/reserve", nil, `"{\"event_id\":1}"`, 400, ticketrush.EInvalidJSON},
	{"ErrNull", "POST", "/api/reserve", nil, `null`, 400, ticketrush.EInvalidJSON},
	{"ErrEmptyBody", "POST", "/api/reserve", map[string]string{"Content-Type": "application/json"}, ``, 400, ticketrush.EInvalidJSON},
	{"ErrTruncated", "POST", "/api/reserve", nil, `{"event_id":{event},"amount":1`, 400, ticketrush.EInvalidJSON},
	{"ErrTrailingData", "POST", "/api/reserve", nil, `{"event_id":{event},"amount":1}{}`, 400, ticketrush.EInvalidJSON},
	{"ErrDuplicateKey", "POST", "/api/reserve", nil, `{"event_id":{event},"amount":1,"amount":2}`, 400, ticketrush.EInvalidJSON},
	{"ErrPurchaseNotJSON", "POST", "/api/purchase", tok("{token}"), `{reservation_id:1}`, 400, ticketrush.EInvalidJSON},
	{"ErrCreateNotJSON", "POST", "/api/admin/events", admin(), `{"name":"x",}`, 400, ticketrush.EInvalidJSON},

	{"ErrReserveUnknownField", "POST", "/api/reserve", nil, `{"event_id":{event},"amount":1,"note":{"a":[1,2,{"b":null}]}}`, 422, ticketrush.EValidation},
	{"ErrPurchaseUnknownField", "POST", "/api/purchase", tok("{token}"), `{"reservation_id":{res_read},"amount":1}`, 422, ticketrush.EValidation},
	{"ErrCreateUnknownField", "POST", "/api/admin/events", admin(), `{"name":"x","ticket_quantity":5,"max_per_vistor":4}`, 422, ticketrush.EValidation},
	{"ErrAmountMissing", "POST", "/api/reserve", nil, `{"event_id":{event}}`, 422, ticketrush.EValidation},
	{"ErrBothMissing", "POST", "/api/reserve", nil, `{}`, 422, ticketrush.EValidation},
	{"ErrAmountString", "POST", "/api/reserve", nil, `{"event_id":{event},"amount":"1"}`, 422, ticketrush.EValidation},
	{"ErrAmountZero", "POST", "/api/reserve", nil, `{"event_id":{event},"amount":0}`, 422, ticketrush.EValidation},
	{"ErrAmountNegative", "POST", "/api/reserve", nil, `{"event_id":{event},"amount":-1}`, 422, ticketrush.EValidation},
	{"ErrAmountTooLarge", "POST", "/api/reserve", nil, `{"event_id":{event},"amount":10001}`, 422, ticketrush.EValidation},
	{"ErrAmountFraction", "POST", "/api/reserve", nil, `{"event_id":{event},"amount":1.5}`, 422, ticketrush.EValidation},
	{"ErrAmountWholeFloat", "POST", "/api/reserve", nil, `{"event_id":{event},"amount":1.0}`, 422, ticketrush.EValidation},
	{"ErrAmountExponent", "POST", "/api/reserve", nil, `{"event_id":{event},"amount":1e3}`, 422, ticketrush.EValidation},
	{"ErrEventIDZero", "POST", "/api/reserve", nil, `{"event_id":0,"amount":1}`, 422, ticketrush.EValidation},
	{"ErrEventIDPastInt64", "POST", "/api/reserve", nil, `{"event_id":9223372036854775808,"amount":1}`, 422, ticketrush.EValidation},
	{"ErrEventIDBool", "POST", "/api/reserve", nil, `{"event_id":true,"amount":1}`, 422, ticketrush.EValidation},
	{"ErrIdempotencyKeySpace", "POST", "/api/reserve", map[string]string{"Idempotency-Key": "a b"}, `{"event_id":{event},"amount":1}`, 422, ticketrush.EValidation},
	{"ErrIdempotencyKeyLong", "POST", "/api/reserve", map[string]string{"Idempotency-Key": strings.Repeat("k", 129)}, `{"event_id":{event},"amount":1}`, 422, ticketrush.EValidation},
	{"ErrReservationIDMissing", "POST", "/api/purchase", tok("{token}"), `{"id":1}`, 422, ticketrush.EValidation},
	{"ErrReservationIDString", "POST", "/api/purchase", tok("{token}"), `{"reservation_id":"{res_read}"}`, 422, ticketrush.EValidation},
	{"ErrPathIDLetters", "GET", "/api/events/abc", nil, "", 422, ticketrush.EValidation},
	{"ErrPathIDZero", "GET", "/api/events/0", nil, "", 422, ticketrush.EValidation},
	{"ErrPathIDNegative", "GET", "/api/events/-1", nil, "", 422, ticketrush.EValidation},
	{"ErrPathIDLeadingZero", "GET", "/api/events/01", nil, "", 422, ticketrush.EValidation},
	{"ErrPathIDPastInt64", "GET", "/api/events/9223372036854775808", nil, "", 422, ticketrush.EValidation},
	{"ErrReservationPathID", "GET", "/api/reservations/1.5", tok("{token}"), "", 422, ticketrush.EValidation},
	{"ErrStatsPathID", "GET", "/api/admin/events/x/stats", admin(), "", 422, ticketrush.EValidation},
	{"ErrCreateNameMissing", "POST", "/api/admin/events", admin(), `{"ticket_quantity":5}`, 422, ticketrush.EValidation},
	{"ErrCreateNameBlank", "POST", "/api/admin/events", admin(), `{"name":"   ","ticket_quantity":5}`, 422, ticketrush.EValidation},
	{"ErrCreateNameTooLong", "POST", "/api/admin/events", admin(), `{"name":"` + strings.Repeat("é", 201) + `","ticket_quantity":5}`, 422, ticketrush.EValidation},
	{"ErrCreateNameNUL", "POST", "/api/admin/events", admin(), `{"name":"a\u0000b","ticket_quantity":5}`, 422, ticketrush.EValidation},
	{"ErrCreateQuantityZero", "POST", "/api/admin/events", admin(), `{"name":"x","ticket_quantity":0}`, 422, ticketrush.EValidation},
	{"ErrCreateQuantityTooLarge", "POST", "/api/admin/events", admin(), `{"name":"x","ticket_quantity":100000001}`, 422, ticketrush.EValidation},
	{"ErrCreateHoldZero", "POST", "/api/admin/events", admin(), `{"name":"x","ticket_quantity":5,"hold_seconds":0}`, 422, ticketrush.EValidation},
	{"ErrCreateHoldTooLong", "POST", "/api/admin/events", admin(), `{"name":"x","ticket_quantity":5,"hold_seconds":86401}`, 422, ticketrush.EValidation},
	{"ErrCreateLimitNegative", "POST", "/api/admin/events", admin(), `{"name":"x","ticket_quantity":5,"max_per_visitor":-1}`, 422, ticketrush.EValidation},
	{"ErrCreateSaleStartsAtBad", "POST", "/api/admin/events", admin(), `{"name":"x","ticket_quantity":5,"sale_starts_at":"tomorrow"}`, 422, ticketrush.EValidation},
	{"ErrCreateSaleStartsAtNumber", "POST", "/api/admin/events", admin(), `{"name":"x","ticket_quantity":5,"sale_starts_at":1700000000}`, 422, ticketrush.EValidation},

	{"ErrPurchaseNoToken", "POST", "/api/purchase", nil, `{"reservation_id":{res_read}}`, 400, ticketrush.EVisitorTokenRequired},
	{"ErrReadNoToken", "GET", "/api/reservations/{res_read}", nil, "", 400, ticketrush.EVisitorTokenRequired},
	{"ErrCancelNoToken", "DELETE", "/api/reservations/{res_read}", nil, "", 400, ticketrush.EVisitorTokenRequired},
	{"ErrReserveBadToken", "POST", "/api/reserve", tok("not-a-uuid"), `{"event_id":{event},"amount":1}`, 400, ticketrush.EInvalidVisitorToken},
	{"ErrPurchaseBadToken", "POST", "/api/purchase", tok("123"), `{"reservation_id":{res_read}}`, 400, ticketrush.EInvalidVisitorToken},
	{"ErrReadBadToken", "GET", "/api/reservations/{res_read}", tok("zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"), "", 400, ticketrush.EInvalidVisitorToken},
	{"ErrCancelBadToken", "DELETE", "/api/reservations/{res_read}", tok("{token}x"), "", 400, ticketrush.EInvalidVisitorToken},

	{"ErrReserveUnknownEvent", "POST", "/api/reserve", nil, `{"event_id":999999,"amount":1}`, 404, ticketrush.EEventNotFound},
	{"ErrGetUnknownEvent", "GET", "/api/events/999999", nil, "", 404, ticketrush.EEventNotFound},
	{"ErrStatsUnknownEvent", "GET", "/api/admin/events/999999/stats", admin(), "", 404, ticketrush.EEventNotFound},
	{"ErrPurchaseUnknownReservation", "POST", "/api/purchase", tok("{token}"), `{"reservation_id":999999}`, 404, ticketrush.EReservationNotFound},
	{"ErrReadUnknownReservation", "GET", "/api/reservations/999999", tok("{token}"), "", 404, ticketrush.EReservationNotFound},
	{"ErrCancelUnknownReservation", "DELETE", "/api/reservations/999999", tok("{token}"), "", 404, ticketrush.EReservationNotFound},
	{"ErrReadOthersReservation", "GET", "/api/reservations/{res_other}", tok("{token}"), "", 404, ticketrush.EReservationNotFound},
	{"ErrPurchaseOthersReservation", "POST", "/api/purchase", tok("{token}"), `{"reservation_id":{res_other}}`, 404, ticketrush.EReservationNotFound},
	{"ErrCancelOthersReservation", "DELETE", "/api/reservations/{res_other}", tok("{token}"), "", 404, ticketrush.EReservationNotFound},

	{"ErrNotEnoughTickets", "POST", "/api/reserve", nil, `{"event_id":{small},"amount":6}`, 409, ticketrush.ENotEnoughTickets},
	{"ErrSaleNotStarted", "POST", "/api/reserve", nil, `{"event_id":{later},"amount":1}`, 409, ticketrush.ESaleNotStarted},
	{"ErrVisitorLimit", "POST", "/api/reserve", tok("{token}"), `{"event_id":{limit},"amount":3}`, 409, ticketrush.EVisitorLimit},
	{"ErrPurchasePurchased", "POST", "/api/purchase", tok("{token}"), `{"reservation_id":{res_purchased}}`, 409, ticketrush.EAlreadyPurchased},
	{"ErrCancelPurchased", "DELETE", "/api/reservations/{res_purchased}", tok("{token}"), "", 409, ticketrush.EAlreadyPurchased},
	{"ErrPurchaseCancelled", "POST", "/api/purchase", tok("{token}"), `{"reservation_id":{res_cancelled}}`, 409, ticketrush.ECancelled},
	{"ErrPurchaseExpired", "POST", "/api/purchase", tok("{token}"), `{"reservation_id":{res_expired}}`, 410, ticketrush.EExpired},
	{"ErrCancelExpired", "DELETE", "/api/reservations/{res_expired2}", tok("{token}"), "", 410, ticketrush.EExpired},
	{"ErrIdempotencyKeyWithoutToken", "POST", "/api/reserve", map[string]string{"Idempotency-Key": "retry-me"}, `{"event_id":{event},"amount":1}`, 400, ticketrush.EVisitorTokenRequired},
	{"ErrIdempotencyKeyReused", "POST", "/api/reserve", map[string]string{"Visitor-Token": "{token}", "Idempotency-Key": "key-reuse"}, `{"event_id":{event},"amount":2}`, 422, ticketrush.EIdempotencyKeyReused},

	{"ErrCreateNoToken", "POST", "/api/admin/events", nil, `{"name":"x","ticket_quantity":5}`, 401, ticketrush.EUnauthorized},
	{"ErrCreateWrongToken", "POST", "/api/admin/events", map[string]string{"Authorization": "Bearer " + adminToken + "x"}, `{"name":"x","ticket_quantity":5}`, 401, ticketrush.EUnauthorized},
	{"ErrCreateBasicAuth", "POST", "/api/admin/events", map[string]string{"Authorization": "Basic " + adminToken}, `{"name":"x","ticket_quantity":5}`, 401, ticketrush.EUnauthorized},
	{"ErrCreateEmptyBearer", "POST", "/api/admin/events", map[string]string{"Authorization": "Bearer "}, `{"name":"x","ticket_quantity":5}`, 401, ticketrush.EUnauthorized},
	{"ErrStatsNoToken", "GET", "/api/admin/events/{event}/stats", nil, "", 401, ticketrush.EUnauthorized},

	{"ErrBodyTooLarge", "POST", "/api/reserve", nil, `{"event_id":{event},"amount":1,"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`, 413, ticketrush.EBodyTooLarge},
	{"ErrCreateBodyTooLarge", "POST", "/api/admin/events", admin(), `{"name":"` + strings.Repeat("x", MaxBodyBytes) + `","ticket_quantity":5}`, 413, ticketrush.EBodyTooLarge},
	{"ErrContentTypeAbsent", "POST", "/api/reserve", map[string]string{"Content-Type": "<absent>"}, `{"event_id":{event},"amount":1}`, 415, ticketrush.EUnsupportedMedia},
	{"ErrContentTypeEmpty", "POST", "/api/purchase", map[string]string{"Visitor-Token": "{token}", "Content-Type": ""}, `{"reservation_id":{res_read}}`, 415, ticketrush.EUnsupportedMedia},
	{"ErrCreateContentTypeAbsent", "POST", "/api/admin/events", map[string]string{"Authorization": "Bearer " + adminToken, "Content-Type": "<absent>"}, `{"name":"x","ticket_quantity":5}`, 415, ticketrush.EUnsupportedMedia},
	{"ErrContentType", "POST", "/api/reserve", map[string]string{"Content-Type": "text/plain"}, `{"event_id":{event},"amount":1}`, 415, ticketrush.EUnsupportedMedia},
	{"ErrContentTypeCharset", "POST", "/api/purchase", map[string]string{"Visitor-Token": "{token}", "Content-Type": "application/json; charset=latin1"}, `{"reservation_id":{res_read}}`, 415, ticketrush.EUnsupportedMedia},
	{"ErrUnknownRoute", "GET", "/api/nope", nil, "", 404, ticketrush.ENotFound},
	{"ErrUnknownSubroute", "GET", "/api/events/{event}/extra", nil, "", 404, ticketrush.ENotFound},
	{"ErrWrongMethod", "PUT", "/api/events", nil, `{}`, 405, ticketrush.EMethodNotAllowed},
	{"ErrGetReserve", "GET", "/api/reserve", nil, "", 405, ticketrush.EMethodNotAllowed},
}

// TestAPI runs every scenario on every backend and strategy. The scenarios
// of one backend and strategy share a database (creating one costs more
// than all its requests on PostgreSQL), run in order, and each creates the
// events it uses. Every answer is checked against the OpenAPI document.
func TestAPI(t *testing.T) {
	scenarios := []struct {
		name string
		f    func(t *testing.T, e *env)
	}{
		{"Tables", testTables},
		{"SeedRequests", testSeedRequests},
		{"TimesOnTheWire", testTimesOnTheWire},
		{"IdempotentRepeat", testIdempotentRepeat},
		{"Expiry", testExpiry},
		{"Cancel", testCancel},
		{"VisitorLimit", testVisitorLimit},
		{"BodyLimit", testBodyLimit},
		{"HostileInputChangesNothing", testHostile},
		{"UnknownFieldsRefused", testUnknownFields},
		{"RushOverHTTP", testRushOverHTTP},
	}
	forEachBackend(t, func(t *testing.T, e *env) {
		for _, sc := range scenarios {
			t.Run(sc.name, func(t *testing.T) { sc.f(t, e) })
		}
		checkInvariant(t, e)
	})
}

// testTables runs every case of apiCases, each on its own fixture.
func testTables(t *testing.T, e *env) {
	rep := e.fixture(t)
	for _, c := range apiCases {
		t.Run(c.name, func(t *testing.T) {
			h := make(map[string]string, len(c.headers))
			for k, v := range c.headers {
				h[k] = rep.Replace(v)
			}
			res := e.do(t, request{method: c.method, path: rep.Replace(c.path), headers: h, body: rep.Replace(c.body)})
			if res.status != c.status {
				t.Fatalf("got %d, want %d: %s", res.status, c.status, truncate(string(res.body), 500))
			}
			if c.code != "" {
				got := errorOf(t, res)
				if got.Code != c.code {
					t.Errorf("code %q, want %q (%s)", got.Code, c.code, got.Message)
				}
				if (got.Code == ticketrush.EValidation) != (len(got.Fields) > 0) {
					t.Errorf("fields %v with code %q", got.Fields, got.Code)
				}
			}
		})
	}
}

// checkInvariant checks capacity == available + held + purchased for every
// event.
func checkInvariant(t *testing.T, e *env) {
	t.Helper()
	events, err := e.store.Events(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		st, err := e.store.Stats(context.Background(), ev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Capacity != st.Available+st.Held+st.Purchased {
			t.Errorf("event %d: invariant broken: %+v", ev.ID, *st)
		}
	}
}

// TestErrorTableCoversEveryCode makes sure a new error code cannot be added
// to the domain without a status in the table.
func TestErrorTableCoversEveryCode(t *testing.T) {
	codes := []string{
		ticketrush.EInvalidJSON, ticketrush.EValidation, ticketrush.EVisitorTokenRequired,
		ticketrush.EInvalidVisitorToken, ticketrush.EEventNotFound, ticketrush.EReservationNotFound,
		ticketrush.ENotEnoughTickets, ticketrush.ESaleNotStarted, ticketrush.EVisitorLimit,
		ticketrush.EAlreadyPurchased, ticketrush.ECancelled, ticketrush.EExpired,
		ticketrush.EIdempotencyKeyReused, ticketrush.EUnauthorized, ticketrush.EBodyTooLarge,
		ticketrush.ENotFound, ticketrush.EMethodNotAllowed, ticketrush.EUnsupportedMedia,
		ticketrush.ERateLimited, ticketrush.EOverloaded, ticketrush.EUnavailable, ticketrush.EInternal,
		ticketrush.EOutcomeUnknown, ticketrush.ECrossSiteRequest, ticketrush.ETooManyStreams,
		ticketrush.EAdminDisabled, ticketrush.ESaleClosed, ticketrush.EOrderLimit, ticketrush.EEventHasReservations,
		ticketrush.EWaitingRoomNotFound, ticketrush.ENotInQueue, ticketrush.EQueueNotOpen,
		ticketrush.EChallengeFailed, ticketrush.EAdmissionRequired, ticketrush.EAdmissionInvalid,
		ticketrush.EAdmissionExpired, ticketrush.EBadRequest, ticketrush.EHeadersTooLarge,
	}
	want := map[string]int{
		ticketrush.EInvalidJSON: 400, ticketrush.EValidation: 422, ticketrush.EVisitorTokenRequired: 400,
		ticketrush.EInvalidVisitorToken: 400, ticketrush.EEventNotFound: 404, ticketrush.EReservationNotFound: 404,
		ticketrush.ENotEnoughTickets: 409, ticketrush.ESaleNotStarted: 409, ticketrush.EVisitorLimit: 409,
		ticketrush.EAlreadyPurchased: 409, ticketrush.ECancelled: 409, ticketrush.EExpired: 410,
		ticketrush.EIdempotencyKeyReused: 422, ticketrush.EUnauthorized: 401, ticketrush.EBodyTooLarge: 413,
		ticketrush.ENotFound: 404, ticketrush.EMethodNotAllowed: 405, ticketrush.EUnsupportedMedia: 415,
		ticketrush.ERateLimited: 429, ticketrush.EOverloaded: 503, ticketrush.EUnavailable: 503, ticketrush.EInternal: 500,
		ticketrush.EOutcomeUnknown: 503, ticketrush.ECrossSiteRequest: 403, ticketrush.ETooManyStreams: 429,
		ticketrush.EAdminDisabled: 403, ticketrush.ESaleClosed: 409, ticketrush.EOrderLimit: 409,
		ticketrush.EEventHasReservations: 409, ticketrush.EWaitingRoomNotFound: 404, ticketrush.ENotInQueue: 404,
		ticketrush.EQueueNotOpen: 409, ticketrush.EChallengeFailed: 422, ticketrush.EAdmissionRequired: 403,
		ticketrush.EAdmissionInvalid: 403, ticketrush.EAdmissionExpired: 403,
		ticketrush.EBadRequest: 400, ticketrush.EHeadersTooLarge: 431,
	}
	for _, c := range codes {
		if _, ok := statuses[c]; !ok {
			t.Errorf("code %q has no status", c)
		}
		if got := StatusOf(c); got != want[c] {
			t.Errorf("StatusOf(%q) = %d, want %d", c, got, want[c])
		}
	}
	if len(statuses) != len(codes) {
		t.Errorf("the table has %d codes, the domain %d", len(statuses), len(codes))
	}
	if got := StatusOf("no_such_code"); got != 500 {
		t.Errorf("unknown code: %d", got)
	}
}

// testUnknownFields checks that every endpoint with a body refuses members
// it does not know, naming each of them beside any other bad field in one
// answer, and changes nothing.
func testUnknownFields(t *testing.T, e *env) {
	ev := e.createEvent(t, `{"name":"Strict","ticket_quantity":10}`)
	res := e.reserve(t, ev.ID, 1, tokenA)
	before := e.snapshot(t)
	id := strconv.FormatInt
	for _, c := range []struct {
		name   string
		path   string
		header map[string]string
		body   string
		fields map[string]string
	}{
		{"Reserve", "/api/reserve", visitor(tokenA), `{"event_id":` + id(ev.ID, 10) + `,"amount":1,"qty":3}`,
			map[string]string{"qty": "is not a known field"}},
		{"ReserveBadAndUnknown", "/api/reserve", visitor(tokenA), `{"event_id":"x","amount":1,"qty":3,"Amount":2}`,
			map[string]string{"event_id": "must be an integer", "qty": "is not a known field", "Amount": "is not a known field"}},
		{"Purchase", "/api/purchase", visitor(tokenA), `{"reservation_id":` + id(res.ID, 10) + `,"visitor":"me"}`,
			map[string]string{"visitor": "is not a known field"}},
		{"CreateEvent", "/api/admin/events", admin(), `{"name":"Typo","ticket_quantity":5,"max_per_vistor":4,"hold":60}`,
			map[string]string{"max_per_vistor": "is not a known field", "hold": "is not a known field"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := errorOf(t, e.must(t, request{method: "POST", path: c.path, headers: c.header, body: c.body}, http.StatusUnprocessableEntity))
			if got.Code != ticketrush.EValidation || !maps.Equal(got.Fields, c.fields) {
				t.Errorf("got %s %v, want %s %v", got.Code, got.Fields, ticketrush.EValidation, c.fields)
			}
		})
	}
	if after := e.snapshot(t); after != before {
		t.Errorf("refused requests changed state:\nbefore %s\nafter  %s", before, after)
	}
}
