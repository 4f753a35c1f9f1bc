package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/ticketrush/ticketrush/api"
)

// spec is the OpenAPI document every response in these tests is held to.
var spec = sync.OnceValues(func() (*specRouter, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(api.OpenAPI)
	if err != nil {
		return nil, err
	}
	if err := doc.Validate(context.Background()); err != nil {
		return nil, err
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	return &specRouter{doc: doc, router: router}, nil
})

type specRouter struct {
	doc    *openapi3.T
	router routers.Router
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	if _, err := spec(); err != nil {
		t.Fatal(err)
	}
}

// checkResponse fails t unless the response to req is what api/openapi.yaml
// promises: a documented status, the documented headers, a body matching
// the schema. Requests no route of the document matches must be answered
// with the NotFound or MethodNotAllowed response of its components.
func checkResponse(t testing.TB, req *http.Request, status int, header http.Header, body []byte) {
	t.Helper()
	sr, err := spec()
	if err != nil {
		t.Fatalf("openapi: %v", err)
	}
	// The router only looks at the method, URL and host; it must not see
	// a body the handler already consumed.
	probe := req.Clone(context.Background())
	probe.Body = http.NoBody
	method := probe.Method
	if method == http.MethodHead {
		// A HEAD is answered like its GET without a body.
		probe.Method = http.MethodGet
	}
	route, params, err := sr.router.FindRoute(probe)
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		checkComponentResponse(t, sr, "NotFound", req, http.StatusNotFound, status, header, body)
		return
	case errors.Is(err, routers.ErrMethodNotAllowed):
		checkComponentResponse(t, sr, "MethodNotAllowed", req, http.StatusMethodNotAllowed, status, header, body)
		return
	case err != nil:
		t.Fatalf("openapi: %s %s: find route: %v", req.Method, req.URL, err)
	}
	if method == http.MethodHead {
		if len(body) != 0 {
			t.Errorf("openapi: HEAD %s: answered with a body", req.URL)
		}
		return
	}
	input := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request:    probe,
			PathParams: params,
			Route:      route,
		},
		Status:  status,
		Header:  header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	input.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), input); err != nil {
		t.Errorf("openapi: %s %s → %d: response does not match the document: %v\nbody: %s",
			req.Method, req.URL, status, err, truncate(string(body), 2000))
	}
}

// checkComponentResponse checks an answer against a response of the
// document's components.
func checkComponentResponse(t testing.TB, sr *specRouter, name string, req *http.Request,
	wantStatus, status int, header http.Header, body []byte) {
	t.Helper()
	if status != wantStatus {
		t.Errorf("openapi: %s %s matches no documented operation: got %d, want %d", req.Method, req.URL, status, wantStatus)
		return
	}
	resp := sr.doc.Components.Responses[name].Value
	for h, ref := range resp.Headers {
		if ref.Value.Required && header.Get(h) == "" {
			t.Errorf("openapi: %s %s → %d: missing header %s", req.Method, req.URL, status, h)
		}
	}
	if req.Method == http.MethodHead {
		return
	}
	mt := resp.Content.Get(header.Get("Content-Type"))
	if mt == nil {
		t.Errorf("openapi: %s %s → %d: content type %q not documented", req.Method, req.URL, status, header.Get("Content-Type"))
		return
	}
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&v); err != nil {
		t.Errorf("openapi: %s %s → %d: body is not JSON: %v", req.Method, req.URL, status, err)
		return
	}
	if _, err := dec.Token(); err != io.EOF {
		t.Errorf("openapi: %s %s → %d: trailing data after the JSON body", req.Method, req.URL, status)
	}
	if err := mt.Schema.Value.VisitJSON(v, openapi3.MultiErrors(), openapi3.VisitAsResponse()); err != nil {
		t.Errorf("openapi: %s %s → %d: body does not match %s: %v\nbody: %s", req.Method, req.URL, status, name, err, body)
	}
}
