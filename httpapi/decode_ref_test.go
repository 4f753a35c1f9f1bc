package httpapi

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/ticketrush/ticketrush"
)

// The decoder is built on go-json-experiment's jsontext. This file keeps a
// second, independent implementation built on encoding/json's tokens, and
// FuzzDecodeObject checks that both agree on every input: which bodies are
// refused and what the accepted ones hold.

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

// jsonValue is what the reference keeps of one top-level member: its type,
// and the text of a number or the value of a string.
type jsonValue struct {
	kind jsonKind
	num  json.Number
	str  string
}

// referenceView turns decodeObject's raw members into the reference's
// shape, unquoting strings with encoding/json.
func referenceView(t *testing.T, m object) map[string]jsonValue {
	out := make(map[string]jsonValue, m.Len())
	for name, val := range m.All() {
		var v jsonValue
		switch val.Kind() {
		case 'n':
			v.kind = kindNull
		case 't', 'f':
			v.kind = kindBool
		case '0':
			v = jsonValue{kind: kindNumber, num: json.Number(val)}
		case '"':
			v.kind = kindString
			if err := json.Unmarshal(val, &v.str); err != nil {
				t.Fatalf("member %q: %v", name, err)
			}
		case '{':
			v.kind = kindObject
		case '[':
			v.kind = kindArray
		default:
			t.Fatalf("member %q: kind %v", name, val.Kind())
		}
		out[name] = v
	}
	return out
}

// referenceDecodeObject parses body as exactly one JSON object and returns its
// members. It refuses, as invalid_json, anything else: invalid UTF-8,
// another type at the top, trailing data, a repeated key at any level and
// nesting deeper than maxDepth. Parsing walks tokens rather than
// unmarshalling into a struct because encoding/json silently keeps the last
// of duplicate keys, which lets a proxy and this server read different
// requests from one body.
func referenceDecodeObject(body []byte) (map[string]jsonValue, error) {
	if !utf8.Valid(body) || hasLoneSurrogate(body) {
		return nil, errInvalidJSON("The request body must be valid UTF-8.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return nil, errInvalidJSON("The request body must be a JSON object.")
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errInvalidJSON("The request body must be a JSON object.")
	}
	members := make(map[string]jsonValue, 4)
	for dec.More() {
		key, err := refObjectKey(dec)
		if err != nil {
			return nil, err
		}
		if _, dup := members[key]; dup {
			return nil, errDuplicateKey(key)
		}
		v, err := refTopValue(dec)
		if err != nil {
			return nil, err
		}
		members[key] = v
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return nil, errMalformed(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errInvalidJSON("The request body must hold exactly one JSON object.")
	}
	return members, nil
}

func refObjectKey(dec *json.Decoder) (string, error) {
	tok, err := dec.Token()
	if err != nil {
		return "", errMalformed(err)
	}
	key, ok := tok.(string)
	if !ok {
		return "", errInvalidJSON("The request body is not valid JSON.")
	}
	return key, nil
}

// refTopValue reads one member value of the top-level object.
func refTopValue(dec *json.Decoder) (jsonValue, error) {
	tok, err := dec.Token()
	if err != nil {
		return jsonValue{}, errMalformed(err)
	}
	switch t := tok.(type) {
	case nil:
		return jsonValue{kind: kindNull}, nil
	case bool:
		return jsonValue{kind: kindBool}, nil
	case json.Number:
		return jsonValue{kind: kindNumber, num: t}, nil
	case string:
		return jsonValue{kind: kindString, str: t}, nil
	case json.Delim:
		kind := kindObject
		if t == '[' {
			kind = kindArray
		}
		if err := refSkipNested(dec, t); err != nil {
			return jsonValue{}, err
		}
		return jsonValue{kind: kind}, nil
	}
	return jsonValue{}, errInvalidJSON("The request body is not valid JSON.")
}

// refSkipNested consumes a nested object or array whose opening delimiter was
// just read, checking its objects for repeated keys.
func refSkipNested(dec *json.Decoder, open json.Delim) error {
	// Each open container: its key set when it is an object, nil for an
	// array. The top-level object is depth 1.
	stack := []map[string]struct{}{refKeySet(open)}
	for len(stack) > 0 {
		if len(stack)+1 > maxDepth {
			return errInvalidJSON("The request body is nested too deeply.")
		}
		top := stack[len(stack)-1]
		if top != nil && dec.More() {
			key, err := refObjectKey(dec)
			if err != nil {
				return err
			}
			if _, dup := top[key]; dup {
				return errDuplicateKey(key)
			}
			top[key] = struct{}{}
		}
		tok, err := dec.Token()
		if err != nil {
			return errMalformed(err)
		}
		if d, ok := tok.(json.Delim); ok {
			switch d {
			case '{', '[':
				stack = append(stack, refKeySet(d))
			default:
				stack = stack[:len(stack)-1]
			}
		}
	}
	return nil
}

func refKeySet(d json.Delim) map[string]struct{} {
	if d == '{' {
		return map[string]struct{}{}
	}
	return nil
}

func FuzzDecodeObject(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := decodeObject(body)
		want, werr := referenceDecodeObject(body)
		if (err == nil) != (werr == nil) {
			t.Fatalf("%q: scanner error %v, reference error %v", body, err, werr)
		}
		if err != nil {
			if ticketrush.ErrorCode(err) != ticketrush.EInvalidJSON || ticketrush.ErrorCode(werr) != ticketrush.EInvalidJSON {
				t.Fatalf("%q: codes %v, %v", body, err, werr)
			}
			return
		}
		if got := referenceView(t, m); !reflect.DeepEqual(got, want) {
			t.Fatalf("%q: scanner %#v, reference %#v", body, got, want)
		}
	})
}

func errMalformed(error) error {
	return errInvalidJSON("The request body is not valid JSON.")
}
