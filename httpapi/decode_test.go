package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

func TestDecodeReserve(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		event    int64
		amount   int64
		code     string
		badField []string // fields named in a validation error
	}{
		{"OK", `{"event_id":1,"amount":1}`, 1, 1, "", nil},
		{"OKMaxima", `{"event_id":9223372036854775807,"amount":10000}`, 9223372036854775807, 10000, "", nil},
		{"OKWhitespace", " \t\r\n{ \"amount\" : 2 , \"event_id\" : 3 }\n", 3, 2, "", nil},
		// Unknown members are refused, each named, with any bad known one.
		{"UnknownFields", `{"event_id":1,"amount":1,"x":[1,{"y":null}],"z":"é"}`, 0, 0, ticketrush.EValidation, []string{"x", "z"}},
		{"UnknownAndBad", `{"event_id":1,"amount":0,"qty":3}`, 0, 0, ticketrush.EValidation, []string{"amount", "qty"}},
		{"UnknownNull", `{"event_id":1,"amount":1,"x":null}`, 0, 0, ticketrush.EValidation, []string{"x"}},
		{"UnknownCase", `{"event_id":1,"amount":1,"Amount":1}`, 0, 0, ticketrush.EValidation, []string{"Amount"}},
		{"OKEscapedKey", `{"event_\u0069d":4,"amount":1}`, 4, 1, "", nil},
		{"Empty", ``, 0, 0, ticketrush.EInvalidJSON, nil},
		{"Spaces", `   `, 0, 0, ticketrush.EInvalidJSON, nil},
		{"Null", `null`, 0, 0, ticketrush.EInvalidJSON, nil},
		{"Array", `[{"event_id":1,"amount":1}]`, 0, 0, ticketrush.EInvalidJSON, nil},
		{"String", `"x"`, 0, 0, ticketrush.EInvalidJSON, nil},
		{"Truncated", `{"event_id":1,"amount":`, 0, 0, ticketrush.EInvalidJSON, nil},
		{"TruncatedString", `{"event_id":1,"amount":1,"x":"ab`, 0, 0, ticketrush.EInvalidJSON, nil},
		{"Trailing", `{"event_id":1,"amount":1}x`, 0, 0, ticketrush.EInvalidJSON, nil},
		{"TwoObjects", `{"event_id":1,"amount":1}{"event_id":1,"amount":1}`, 0, 0, ticketrush.EInvalidJSON, nil},
		{"Duplicate", `{"event_id":1,"amount":1,"event_id":2}`, 0, 0, ticketrush.EInvalidJSON, nil},
		{"DuplicateUnknown", `{"event_id":1,"amount":1,"x":1,"x":2}`, 0, 0, ticketrush.EInvalidJSON, nil},
		{"DuplicateNested", `{"event_id":1,"amount":1,"x":[[{"a":1,"b":{"a":1},"a":2}]]}`, 0, 0, ticketrush.EInvalidJSON, nil},
		// Not a duplicate: the body is valid JSON, refused only for x.
		{"SameKeyInSiblings", `{"event_id":1,"amount":1,"x":[{"a":1},{"a":2}]}`, 0, 0, ticketrush.EValidation, []string{"x"}},
		{"DepthLimit", `{"event_id":1,"amount":1,"x":` + strings.Repeat("[", maxDepth) + strings.Repeat("]", maxDepth) + `}`, 0, 0, ticketrush.EInvalidJSON, nil},
		{"DepthJustBelowLimit", `{"event_id":1,"amount":1,"x":` + strings.Repeat("[", maxDepth-1) + strings.Repeat("]", maxDepth-1) + `}`, 0, 0, ticketrush.EValidation, []string{"x"}},
		{"LoneSurrogate", `{"event_id":1,"amount":1,"x":"\ud800"}`, 0, 0, ticketrush.EInvalidJSON, nil},
		{"InvalidUTF8", "{\"event_id\":1,\"amount\":1,\"x\":\"\xff\"}", 0, 0, ticketrush.EInvalidJSON, nil},
		{"Missing", `{}`, 0, 0, ticketrush.EValidation, []string{"amount", "event_id"}},
		{"AmountString", `{"event_id":1,"amount":"1"}`, 0, 0, ticketrush.EValidation, []string{"amount"}},
		{"AmountFloat", `{"event_id":1,"amount":1.5}`, 0, 0, ticketrush.EValidation, []string{"amount"}},
		{"AmountWholeFloat", `{"event_id":1,"amount":1.0}`, 0, 0, ticketrush.EValidation, []string{"amount"}},
		{"AmountExponent", `{"event_id":1,"amount":1e3}`, 0, 0, ticketrush.EValidation, []string{"amount"}},
		{"AmountNegativeExponent", `{"event_id":1,"amount":100e-2}`, 0, 0, ticketrush.EValidation, []string{"amount"}},
		{"AmountZero", `{"event_id":1,"amount":0}`, 0, 0, ticketrush.EValidation, []string{"amount"}},
		{"AmountMinusZero", `{"event_id":1,"amount":-0}`, 0, 0, ticketrush.EValidation, []string{"amount"}},
		{"AmountOver", `{"event_id":1,"amount":10001}`, 0, 0, ticketrush.EValidation, []string{"amount"}},
		{"AmountNull", `{"event_id":1,"amount":null}`, 0, 0, ticketrush.EValidation, []string{"amount"}},
		{"AmountBool", `{"event_id":1,"amount":true}`, 0, 0, ticketrush.EValidation, []string{"amount"}},
		{"AmountObject", `{"event_id":1,"amount":{}}`, 0, 0, ticketrush.EValidation, []string{"amount"}},
		{"EventPastInt64", `{"event_id":9223372036854775808,"amount":1}`, 0, 0, ticketrush.EValidation, []string{"event_id"}},
		{"EventNegative", `{"event_id":-1,"amount":1}`, 0, 0, ticketrush.EValidation, []string{"event_id"}},
		{"BothBad", `{"event_id":"a","amount":[]}`, 0, 0, ticketrush.EValidation, []string{"amount", "event_id"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			event, amount, err := decodeReserve([]byte(tt.body))
			checkDecodeError(t, err, tt.code, tt.badField)
			if event != tt.event || amount != tt.amount {
				t.Errorf("got (%d, %d), want (%d, %d)", event, amount, tt.event, tt.amount)
			}
		})
	}
}

func checkDecodeError(t *testing.T, err error, code string, fields []string) {
	t.Helper()
	if code == "" {
		if err != nil {
			t.Fatalf("unexpected error %v", err)
		}
		return
	}
	var e *ticketrush.Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v, want code %q", err, code)
	}
	if e.Code != code {
		t.Fatalf("code %q, want %q (%v)", e.Code, code, err)
	}
	if fields != nil {
		if got := slices.Sorted(maps.Keys(e.Fields)); !slices.Equal(got, fields) {
			t.Errorf("fields %v, want %v", got, fields)
		}
	}
}

func TestDecodePurchase(t *testing.T) {
	tests := []struct {
		name string
		body string
		id   int64
		code string
	}{
		{"OK", `{"reservation_id":7}`, 7, ""},
		{"Extra", `{"reservation_id":7,"event_id":"x"}`, 0, ticketrush.EValidation},
		{"Missing", `{"id":7}`, 0, ticketrush.EValidation},
		{"Zero", `{"reservation_id":0}`, 0, ticketrush.EValidation},
		{"String", `{"reservation_id":"7"}`, 0, ticketrush.EValidation},
		{"Float", `{"reservation_id":7.0}`, 0, ticketrush.EValidation},
		{"Huge", `{"reservation_id":123456789012345678901234567890}`, 0, ticketrush.EValidation},
		{"Duplicate", `{"reservation_id":7,"reservation_id":8}`, 0, ticketrush.EInvalidJSON},
		{"NotObject", `7`, 0, ticketrush.EInvalidJSON},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := decodePurchase([]byte(tt.body))
			checkDecodeError(t, err, tt.code, nil)
			if id != tt.id {
				t.Errorf("id %d, want %d", id, tt.id)
			}
		})
	}
}

func TestDecodeCreateEvent(t *testing.T) {
	at := time.Date(2026, 1, 1, 8, 0, 0, 123456000, time.UTC)
	tests := []struct {
		name   string
		body   string
		want   ticketrush.NewEvent
		code   string
		fields []string
	}{
		{"Minimal", `{"name":"Concert","ticket_quantity":10}`,
			ticketrush.NewEvent{Name: "Concert", TicketQuantity: 10, HoldSeconds: 300}, "", nil},
		{"Full", `{"name":"  Concert  ","ticket_quantity":10,"hold_seconds":60,"max_per_visitor":4,"sale_starts_at":"2026-01-01T10:00:00.1234567+02:00"}`,
			ticketrush.NewEvent{Name: "Concert", TicketQuantity: 10, HoldSeconds: 60, MaxPerVisitor: 4, SaleStartsAt: &at}, "", nil},
		{"Nulls", `{"name":"C","ticket_quantity":1,"hold_seconds":null,"max_per_visitor":null,"sale_starts_at":null}`,
			ticketrush.NewEvent{Name: "C", TicketQuantity: 1, HoldSeconds: 300}, "", nil},
		{"NameLong", `{"name":"` + strings.Repeat("ü", 200) + `","ticket_quantity":1}`,
			ticketrush.NewEvent{Name: strings.Repeat("ü", 200), TicketQuantity: 1, HoldSeconds: 300}, "", nil},
		{"NameTooLong", `{"name":"` + strings.Repeat("ü", 201) + `","ticket_quantity":1}`, ticketrush.NewEvent{}, ticketrush.EValidation, []string{"name"}},
		{"NameControl", `{"name":"a\nb","ticket_quantity":1}`, ticketrush.NewEvent{}, ticketrush.EValidation, []string{"name"}},
		{"NameNumber", `{"name":5,"ticket_quantity":1}`, ticketrush.NewEvent{}, ticketrush.EValidation, []string{"name"}},
		{"Empty", `{}`, ticketrush.NewEvent{}, ticketrush.EValidation, []string{"name", "ticket_quantity"}},
		{"AllBad", `{"name":"","ticket_quantity":-1,"hold_seconds":1.5,"max_per_visitor":"2","sale_starts_at":"2026-13-01T00:00:00Z"}`,
			ticketrush.NewEvent{}, ticketrush.EValidation, []string{"hold_seconds", "max_per_visitor", "name", "sale_starts_at", "ticket_quantity"}},
		{"SaleNoZone", `{"name":"C","ticket_quantity":1,"sale_starts_at":"2026-01-01T00:00:00"}`, ticketrush.NewEvent{}, ticketrush.EValidation, []string{"sale_starts_at"}},
		{"SaleYear0", `{"name":"C","ticket_quantity":1,"sale_starts_at":"0000-01-01T00:00:00Z"}`, ticketrush.NewEvent{}, ticketrush.EValidation, []string{"sale_starts_at"}},
		{"SaleYearUnderflow", `{"name":"C","ticket_quantity":1,"sale_starts_at":"1970-01-01T00:00:00+01:00"}`, ticketrush.NewEvent{}, ticketrush.EValidation, []string{"sale_starts_at"}},
		{"SaleYearOverflow", `{"name":"C","ticket_quantity":1,"sale_starts_at":"9999-12-31T23:00:00-02:00"}`, ticketrush.NewEvent{}, ticketrush.EValidation, []string{"sale_starts_at"}},
		{"Duplicate", `{"name":"C","name":"D","ticket_quantity":1}`, ticketrush.NewEvent{}, ticketrush.EInvalidJSON, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeCreateEvent([]byte(tt.body), 300)
			checkDecodeError(t, err, tt.code, tt.fields)
			if tt.code != "" {
				return
			}
			if got.Name != tt.want.Name || got.TicketQuantity != tt.want.TicketQuantity || got.HoldSeconds != tt.want.HoldSeconds ||
				got.MaxPerVisitor != tt.want.MaxPerVisitor || (got.SaleStartsAt == nil) != (tt.want.SaleStartsAt == nil) ||
				got.SaleStartsAt != nil && !got.SaleStartsAt.Equal(*tt.want.SaleStartsAt) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// fuzzSeeds are the seed corpus of every decoding fuzz target: valid bodies
// of each request and the hostile shapes the decoder must refuse.
var fuzzSeeds = []string{
	`{"event_id":1,"amount":1}`,
	`{"reservation_id":1}`,
	`{"name":"Örnek Etkinlik","ticket_quantity":2000,"hold_seconds":300,"max_per_visitor":4,"sale_starts_at":"2026-01-01T00:00:00Z"}`,
	`{"name":"x","ticket_quantity":1,"hold_seconds":null,"sale_starts_at":null}`,
	``, `null`, `[]`, `{}`, `"x"`, `1`, `{"a":`, `{"a":1}}`, `{"a":1} {}`,
	`{"event_id":1,"amount":1,"amount":1}`,
	`{"event_id":1,"amount":1,"\u0061mount":1}`,
	`{"x":{"a":1,"a":1}}`,
	`{"x":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
	`{"event_id":1.0,"amount":1e3}`,
	`{"event_id":-0,"amount":-1}`,
	`{"event_id":9223372036854775808,"amount":99999999999999999999}`,
	`{"event_id":1e999999999,"amount":1}`,
	`{"reservation_id":"1"}`,
	`{"name":"a\u0000b","ticket_quantity":1}`,
	`{"name":"` + strings.Repeat("é", 201) + `","ticket_quantity":1}`,
	`{"name":"x","ticket_quantity":1,"sale_starts_at":"0000-01-01T00:00:00+01:00"}`,
	"{\"event_id\":1,\"amount\":1,\"x\":\"\xff\"}",
	"\xef\xbb\xbf{}",
	`{"event_id":1,"amount":1,"x":"\ud800"}`,
}

// fuzzDecode checks the invariant every decoder keeps: it never panics, and
// it returns either a valid request or a domain error with a 4xx code;
// anything that is not valid JSON is invalid_json.
func fuzzDecode(f *testing.F, decode func(body []byte) (valid bool, err error)) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		valid, err := decode(body)
		if err == nil {
			if !valid {
				t.Fatalf("%q: accepted an invalid request", body)
			}
			if !json.Valid(body) {
				t.Fatalf("%q: accepted a body that is not JSON", body)
			}
			return
		}
		var e *ticketrush.Error
		if !errors.As(err, &e) {
			t.Fatalf("%q: error %v is not a domain error", body, err)
		}
		if s := StatusOf(e.Code); s < 400 || s > 499 {
			t.Fatalf("%q: code %q has status %d", body, e.Code, s)
		}
		if e.Code == ticketrush.EValidation && len(e.Fields) == 0 {
			t.Fatalf("%q: validation error without fields", body)
		}
		if !json.Valid(body) && e.Code != ticketrush.EInvalidJSON {
			t.Fatalf("%q: not JSON, but code %q", body, e.Code)
		}
	})
}

func FuzzDecodeReserve(f *testing.F) {
	fuzzDecode(f, func(body []byte) (bool, error) {
		event, amount, err := decodeReserve(body)
		return event >= 1 && amount >= 1 && amount <= ticketrush.MaxAmount, err
	})
}

func FuzzDecodePurchase(f *testing.F) {
	fuzzDecode(f, func(body []byte) (bool, error) {
		id, err := decodePurchase(body)
		return id >= 1, err
	})
}

func FuzzDecodeCreateEvent(f *testing.F) {
	fuzzDecode(f, func(body []byte) (bool, error) {
		ne, err := decodeCreateEvent(body, 300)
		if err != nil {
			return false, err
		}
		valid := ne.Validate() == nil && !strings.ContainsFunc(ne.Name, func(r rune) bool { return r < 0x20 || r == 0x7f })
		if ne.SaleStartsAt != nil {
			y := ne.SaleStartsAt.Year()
			valid = valid && y >= minSaleYear && y <= maxSaleYear && ne.SaleStartsAt.Location() == time.UTC
		}
		return valid, nil
	})
}

func TestPathID(t *testing.T) {
	for in, want := range map[string]int64{
		"1": 1, "42": 42, "9223372036854775807": 9223372036854775807,
		"": 0, "0": 0, "01": 0, "-1": 0, "+1": 0, "1.0": 0, "1e3": 0, "abc": 0, " 1": 0,
		"9223372036854775808": 0, "99999999999999999999": 0, "١": 0,
	} {
		r := &http.Request{}
		r.SetPathValue("id", in)
		got, err := pathID(r)
		if got != want || (err == nil) != (want != 0) {
			t.Errorf("pathID(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
}

// decodeWaitingRoomPatch reads a body the way the admin event patch will:
// a merge patch with a nested waiting_room object, so the form's nested
// objects, dotted names and nulls are tested as handlers will use them.
func decodeWaitingRoomPatch(body []byte) (got map[string]any, err error) {
	o, err := decodeObject(body)
	if err != nil {
		return nil, err
	}
	got = map[string]any{}
	f := newForm(o)
	if f.IsNull("name") {
		got["name"] = nil
	} else if s, ok := f.OptString("name"); ok {
		got["name"] = s
	}
	if f.IsNull("waiting_room") {
		got["waiting_room"] = nil
	} else if wr, ok := f.Object("waiting_room"); ok {
		if n, ok := wr.OptInt("admit_per_minute", 1, 100000, "must be an integer from 1 to 100000"); ok {
			got["waiting_room.admit_per_minute"] = n
		}
		if n, ok := wr.OptInt("max_active", 1, 1000000, "must be an integer from 1 to 1000000"); ok {
			got["waiting_room.max_active"] = n
		}
		if t, ok := wr.OptTime("prequeue_opens_at"); ok {
			got["waiting_room.prequeue_opens_at"] = t
		}
		if b, ok := wr.OptBool("paused"); ok {
			got["waiting_room.paused"] = b
		}
		var bits []int64
		if wr.Value("challenge_bits", &bits, "must be a list of integers") {
			got["waiting_room.challenge_bits"] = bits
		}
	}
	return got, f.Err()
}

func TestFormNestedAndMergePatch(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		body   string
		want   map[string]any
		fields map[string]string
	}{
		{"Empty", `{}`, map[string]any{}, nil},
		{"Values", `{"name":"N\u00e9","waiting_room":{"admit_per_minute":60,"max_active":500,"prequeue_opens_at":"2026-12-01T10:00:00+01:00","paused":false,"challenge_bits":[1,2]}}`,
			map[string]any{"name": "Né", "waiting_room.admit_per_minute": int64(60), "waiting_room.max_active": int64(500),
				"waiting_room.prequeue_opens_at": at, "waiting_room.paused": false, "waiting_room.challenge_bits": []int64{1, 2}}, nil},
		{"NullsRemove", `{"name":null,"waiting_room":null}`, map[string]any{"name": nil, "waiting_room": nil}, nil},
		{"NestedNullsAreAbsent", `{"waiting_room":{"paused":null,"max_active":null}}`, map[string]any{}, nil},
		{"EveryBadFieldNamed", `{"name":1,"colour":"red","waiting_room":{"admit_per_minute":1.5,"max_active":0,"paused":"yes","prequeue_opens_at":"soon","challenge_bits":["x"],"admit_per_hour":5}}`,
			nil, map[string]string{
				"name":                           msgString,
				"colour":                         msgUnknown,
				"waiting_room.admit_per_minute":  msgInteger,
				"waiting_room.max_active":        "must be an integer from 1 to 1000000",
				"waiting_room.paused":            msgBool,
				"waiting_room.prequeue_opens_at": msgTime,
				"waiting_room.challenge_bits":    "must be a list of integers",
				"waiting_room.admit_per_hour":    msgUnknown,
			}},
		{"NestedNotObject", `{"waiting_room":[1]}`, nil, map[string]string{"waiting_room": msgObject}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeWaitingRoomPatch([]byte(tt.body))
			if tt.fields == nil {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				if fmt.Sprint(got) != fmt.Sprint(tt.want) {
					t.Errorf("got %v, want %v", got, tt.want)
				}
				return
			}
			e, ok := errors.AsType[*ticketrush.Error](err)
			if !ok || e.Code != ticketrush.EValidation {
				t.Fatalf("error %v, want validation_failed", err)
			}
			if !maps.Equal(e.Fields, tt.fields) {
				t.Errorf("fields %v,\nwant %v", e.Fields, tt.fields)
			}
		})
	}
}

func TestDecodeErrorMessages(t *testing.T) {
	for body, want := range map[string]string{
		`{"a":1,"x":{"b":1,"\u0062":2}}`:  `The request body repeats the key "b".`,
		`{"amount":1,"amount":2}`:         `The request body repeats the key "amount".`,
		"{\"a\":\"\xff\"}":                "The request body must be valid UTF-8.",
		`[]`:                              "The request body must be a JSON object.",
		``:                                "The request body must be a JSON object.",
		`{} {}`:                           "The request body must hold exactly one JSON object.",
		`{"a":` + strings.Repeat("[", 40): "The request body is nested too deeply.",
		`{"a":1,}`:                        "The request body is not valid JSON.",
	} {
		_, err := decodeObject([]byte(body))
		if ticketrush.ErrorCode(err) != ticketrush.EInvalidJSON || ticketrush.ErrorMessage(err) != want {
			t.Errorf("%q: %v, want invalid_json %q", body, err, want)
		}
	}
}

func TestUnknownFieldsCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString(`{"event_id":1,"amount":1`)
	for i := range 1000 {
		fmt.Fprintf(&b, `,"k%04d":0`, i)
	}
	b.WriteString("}")
	_, _, err := decodeReserve([]byte(b.String()))
	e, ok := errors.AsType[*ticketrush.Error](err)
	if !ok || e.Code != ticketrush.EValidation {
		t.Fatalf("error %v, want validation_failed", err)
	}
	if len(e.Fields) != maxUnknownNamed || e.Fields["k0000"] != msgUnknown || e.Fields["k0099"] != msgUnknown {
		t.Errorf("%d fields named, want the first %d in order", len(e.Fields), maxUnknownNamed)
	}
}
