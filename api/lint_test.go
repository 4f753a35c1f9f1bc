package api

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"unicode"

	"github.com/getkin/kin-openapi/openapi3"
	"go.yaml.in/yaml/v3"
)

// TestSpecLint holds openapi.yaml to the recommended lint rules (the rule
// set redocly.yaml names), as a Go test so that CI needs no other
// toolchain. Each rule below carries the recommended set's name, so that
// .redocly.lint-ignore.yaml lists the deliberate exceptions for this test
// and for the CLI alike. Two rules are ours, go-typename-unique and
// go-allof-response-type, which keep the document generating a usable Go
// client (see ./client).
func TestSpecLint(t *testing.T) {
	l, err := newLinter()
	if err != nil {
		t.Fatal(err)
	}
	l.run()
	for _, p := range l.problems {
		t.Errorf("%s %s: %s", p.rule, p.where, p.msg)
	}
	for rule, ptrs := range l.ignore {
		for _, ptr := range ptrs {
			if !l.ignored[rule+" "+ptr] {
				t.Errorf(".redocly.lint-ignore.yaml: %s %s matches no problem any more; remove it", rule, ptr)
			}
		}
	}
}

// TestSpecLintCatches feeds the linter the mistakes the recommended set
// found in this document before, so that a rule cannot silently stop
// working.
func TestSpecLintCatches(t *testing.T) {
	for _, c := range []struct {
		rule, old, new string
	}{
		{"security-defined", "      operationId: listEvents\n      security: []\n", "      operationId: listEvents\n"},
		{"no-empty-servers", "servers:\n  - url: /\n", "x-servers:\n  - url: /\n"},
		{"nullable-type-sibling", "          type: string\n          format: date-time\n          pattern:", "          format: date-time\n          pattern:"},
		{"go-typename-unique", "      x-go-name: IDParam\n", ""},
		{"go-allof-response-type", "            x-go-type: Error\n", ""},
		{"tag-description", "    description: Events on sale, and their live availability.\n", ""},
		{"operation-summary", "      summary: One event.\n", ""},
	} {
		t.Run(c.rule, func(t *testing.T) {
			if !strings.Contains(string(OpenAPI), c.old) {
				t.Fatalf("openapi.yaml no longer contains %q", c.old)
			}
			l, err := newLinterFrom([]byte(strings.Replace(string(OpenAPI), c.old, c.new, 1)))
			if err != nil {
				t.Fatal(err)
			}
			l.run()
			for _, p := range l.problems {
				if p.rule == c.rule {
					return
				}
			}
			t.Errorf("no %s problem; got %v", c.rule, l.problems)
		})
	}
}

type problem struct{ rule, where, msg string }

type linter struct {
	doc *openapi3.T
	raw map[string]any
	// ignore is the exceptions file: rule → JSON pointers.
	ignore   map[string][]string
	ignored  map[string]bool
	problems []problem
}

func newLinter() (*linter, error) { return newLinterFrom(OpenAPI) }

func newLinterFrom(spec []byte) (*linter, error) {
	l := &linter{ignored: map[string]bool{}}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(spec)
	if err != nil {
		return nil, fmt.Errorf("struct: %w", err)
	}
	l.doc = doc
	if err := yaml.Unmarshal(spec, &l.raw); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(".redocly.lint-ignore.yaml")
	if err != nil {
		return nil, err
	}
	var files map[string]map[string][]string
	if err := yaml.Unmarshal(b, &files); err != nil {
		return nil, fmt.Errorf(".redocly.lint-ignore.yaml: %w", err)
	}
	l.ignore = files["openapi.yaml"]
	return l, nil
}

func (l *linter) report(rule, where, format string, args ...any) {
	if slices.Contains(l.ignore[rule], where) {
		l.ignored[rule+" "+where] = true
		return
	}
	l.problems = append(l.problems, problem{rule, where, fmt.Sprintf(format, args...)})
}

// pointer escapes a JSON pointer token.
func pointer(token string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(token)
}

func (l *linter) run() {
	// struct: the document is valid OpenAPI 3.0, examples included.
	if err := l.doc.Validate(context.Background()); err != nil {
		l.report("struct", "#/", "%v", err)
	}
	l.info()
	l.servers()
	l.tags()
	l.operations()
	l.paths()
	l.unusedComponents()
	walk(l.raw, "#", l.schemaRules)
	walk(l.raw, "#", l.goAllOfResponses)
	l.goTypenames()
}

func (l *linter) info() {
	if l.doc.Info.License == nil {
		l.report("info-license", "#/info", "Info object should contain `license` field.")
	}
	if l.doc.Info.Description == "" {
		l.report("info-description", "#/info", "Info object should contain `description` field.")
	}
}

func (l *linter) servers() {
	if len(l.doc.Servers) == 0 {
		l.report("no-empty-servers", "#/", "Servers must be present.")
	}
	for i, s := range l.doc.Servers {
		where := fmt.Sprintf("#/servers/%d/url", i)
		if s.URL != "/" && strings.HasSuffix(s.URL, "/") {
			l.report("no-server-trailing-slash", where, "Server url should not have a trailing slash.")
		}
		if u, err := url.Parse(s.URL); err == nil && strings.HasSuffix(u.Hostname(), "example.com") {
			l.report("no-server-example.com", where, "Server url should not point to example.com.")
		}
	}
}

func (l *linter) tags() {
	for i, tag := range l.doc.Tags {
		if tag.Description == "" {
			l.report("tag-description", fmt.Sprintf("#/tags/%d", i), "Tag object should contain `description` field.")
		}
	}
}

var (
	pathParam = regexp.MustCompile(`\{([^}]+)\}`)
	// operationIDURLSafe is RFC 3986's unreserved characters.
	operationIDURLSafe = regexp.MustCompile(`^[A-Za-z0-9._~-]+$`)
)

func (l *linter) operations() {
	tags := map[string]bool{}
	for _, tag := range l.doc.Tags {
		tags[tag.Name] = true
	}
	ids := map[string]string{}
	for _, path := range l.doc.Paths.InMatchingOrder() {
		item := l.doc.Paths.Value(path)
		for method, op := range item.Operations() {
			where := "#/paths/" + pointer(path) + "/" + strings.ToLower(method)
			if op.Summary == "" {
				l.report("operation-summary", where, "Operation object should contain `summary` field.")
			}
			switch {
			case op.OperationID == "":
				l.report("operation-operationId", where, "Operation object should contain `operationId` field.")
			case ids[op.OperationID] != "":
				l.report("operation-operationId-unique", where+"/operationId", "operationId %q is also the one of %s.", op.OperationID, ids[op.OperationID])
			case !operationIDURLSafe.MatchString(op.OperationID):
				l.report("operation-operationId-url-safe", where+"/operationId", "operationId %q should be URL-safe.", op.OperationID)
			}
			ids[op.OperationID] = where
			// security-defined: every operation says who may call it,
			// `security: []` for a public one, so none is public by
			// omission.
			if op.Security == nil && l.doc.Security == nil {
				l.report("security-defined", where, "Every operation should have security defined on it or on the root level.")
			}
			if op.Security != nil {
				for _, req := range *op.Security {
					for name := range req {
						if l.doc.Components.SecuritySchemes[name] == nil {
							l.report("security-defined", where+"/security", "Security scheme %q is not defined.", name)
						}
					}
				}
			}
			for _, tag := range op.Tags {
				if !tags[tag] {
					l.report("operation-tag-defined", where+"/tags", "Operation tag %q is not defined in the top-level tags.", tag)
				}
			}
			var ok2xx, ok4xx bool
			for code := range op.Responses.Map() {
				ok2xx = ok2xx || strings.HasPrefix(code, "2") || code == "default"
				ok4xx = ok4xx || strings.HasPrefix(code, "4")
			}
			if !ok2xx {
				l.report("operation-2xx-response", where+"/responses", "Operation must have at least one `2XX` response.")
			}
			if !ok4xx {
				l.report("operation-4xx-response", where+"/responses", "Operation must have at least one `4XX` response.")
			}
			params := map[string]bool{}
			inPath := map[string]bool{}
			for _, p := range append(slices.Clone(item.Parameters), op.Parameters...) {
				key := p.Value.In + " " + strings.ToLower(p.Value.Name)
				if params[key] {
					l.report("operation-parameters-unique", where+"/parameters", "Parameter %s %q is listed twice.", p.Value.In, p.Value.Name)
				}
				params[key] = true
				if p.Value.In == "path" {
					inPath[p.Value.Name] = true
				}
			}
			want := map[string]bool{}
			for _, m := range pathParam.FindAllStringSubmatch(path, -1) {
				want[m[1]] = true
				if !inPath[m[1]] {
					l.report("path-parameters-defined", where, "The path parameter %q is not defined for this operation.", m[1])
				}
			}
			for name := range inPath {
				if !want[name] {
					l.report("path-parameters-defined", where+"/parameters", "Path parameter %q is not used in the path %q.", name, path)
				}
			}
		}
	}
}

func (l *linter) paths() {
	seen := map[string]string{}
	for _, path := range l.doc.Paths.InMatchingOrder() {
		where := "#/paths/" + pointer(path)
		if path != "/" && strings.HasSuffix(path, "/") {
			l.report("no-path-trailing-slash", where, "Path should not end with a slash.")
		}
		if strings.Contains(path, "?") {
			l.report("path-not-include-query", where, "Don't put query string items in the path, they belong in parameters.")
		}
		shape := pathParam.ReplaceAllString(path, "{}")
		if other, ok := seen[shape]; ok {
			l.report("no-identical-paths", where, "The path is identical to %q once its parameters are named alike.", other)
		}
		seen[shape] = path
	}
}

// unusedComponents reports components nothing refers to.
func (l *linter) unusedComponents() {
	used := map[string]bool{}
	walk(l.raw, "#", func(_ string, m map[string]any) {
		if ref, ok := m["$ref"].(string); ok {
			used[ref] = true
		}
	})
	comps, _ := l.raw["components"].(map[string]any)
	for _, kind := range []string{"schemas", "responses", "parameters", "examples", "requestBodies", "headers"} {
		items, _ := comps[kind].(map[string]any)
		for name := range items {
			ptr := "#/components/" + kind + "/" + pointer(name)
			if !used[ptr] {
				l.report("no-unused-components", ptr, "Component: %q is never used.", name)
			}
		}
	}
}

// schemaRules applies the rules about schema objects to every map.
func (l *linter) schemaRules(where string, m map[string]any) {
	if _, ok := m["nullable"]; ok {
		if _, typed := m["type"]; !typed {
			l.report("nullable-type-sibling", where+"/nullable", "The `type` field must be defined when the `nullable` field is used.")
		}
	}
	if enum, ok := m["enum"].([]any); ok {
		if typ, ok := m["type"].(string); ok {
			for _, v := range enum {
				if !enumMatches(typ, v) {
					l.report("no-enum-type-mismatch", where+"/enum", "Enum value %v does not match type %q.", v, typ)
				}
			}
		}
	}
	if req, ok := m["required"].([]any); ok {
		props := l.properties(m)
		for _, r := range req {
			name, _ := r.(string)
			if !props[name] {
				l.report("no-required-schema-properties-undefined", where+"/required", "Required property %q is not defined.", name)
			}
		}
	}
}

// properties returns the property names a schema defines, its allOf parts
// (and the component schemas they refer to) included.
func (l *linter) properties(m map[string]any) map[string]bool {
	out := map[string]bool{}
	var add func(m map[string]any, depth int)
	add = func(m map[string]any, depth int) {
		if depth > 8 {
			return
		}
		if ref, ok := m["$ref"].(string); ok {
			if name, ok := strings.CutPrefix(ref, "#/components/schemas/"); ok {
				comps, _ := l.raw["components"].(map[string]any)
				schemas, _ := comps["schemas"].(map[string]any)
				if s, ok := schemas[name].(map[string]any); ok {
					add(s, depth+1)
				}
			}
		}
		if props, ok := m["properties"].(map[string]any); ok {
			for name := range props {
				out[name] = true
			}
		}
		if all, ok := m["allOf"].([]any); ok {
			for _, part := range all {
				if pm, ok := part.(map[string]any); ok {
					add(pm, depth+1)
				}
			}
		}
	}
	add(m, 0)
	return out
}

func enumMatches(typ string, v any) bool {
	switch typ {
	case "string":
		_, ok := v.(string)
		return ok
	case "integer":
		_, ok := v.(int)
		return ok
	case "number":
		switch v.(type) {
		case int, float64:
			return true
		}
		return false
	case "boolean":
		_, ok := v.(bool)
		return ok
	}
	return true
}

var responseSchema = regexp.MustCompile(`/responses/[^/]+/content/[^/]+/schema$`)

// goAllOfResponses is our rule go-allof-response-type: oapi-codegen merges
// an allOf by letting the later part's properties replace the earlier
// one's, so an error answer written as allOf [Error, {its codes}] would
// generate a type without the message. Such a response schema names its
// Go type with x-go-type (Error for errors): the tests still hold each
// answer to the narrower schema, and clients get the whole error.
func (l *linter) goAllOfResponses(where string, m map[string]any) {
	if !responseSchema.MatchString(where) {
		return
	}
	if _, ok := m["allOf"]; !ok {
		return
	}
	if _, ok := m["x-go-type"]; !ok {
		l.report("go-allof-response-type", where, "A response schema made with allOf needs an x-go-type naming its Go type (Error for an error answer).")
	}
}

// goTypenames is our rule go-typename-unique: oapi-codegen makes one Go
// type of every component schema, parameter and response, named after the
// component (or its x-go-name), and refuses a document where two would
// share a name ("duplicate typename"). Request bodies get a suffix and
// headers no type, so they cannot collide.
func (l *linter) goTypenames() {
	comps, _ := l.raw["components"].(map[string]any)
	seen := map[string]string{}
	kinds := []string{"schemas", "parameters", "responses"}
	for _, kind := range kinds {
		items, _ := comps[kind].(map[string]any)
		names := make([]string, 0, len(items))
		for name := range items {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			typeName := goTypeName(name)
			if item, ok := items[name].(map[string]any); ok {
				if n, ok := item["x-go-name"].(string); ok {
					typeName = n
				}
			}
			where := "#/components/" + kind + "/" + pointer(name)
			if other, ok := seen[typeName]; ok {
				l.report("go-typename-unique", where, "Its Go type name %q is also the one of %s; rename one, or give it an x-go-name.", typeName, other)
			}
			seen[typeName] = where
		}
	}
}

// goTypeName is the Go type name oapi-codegen derives from a component
// name: its words (split at anything neither letter nor digit), each with
// its first letter upper-cased.
func goTypeName(name string) string {
	var b strings.Builder
	up := true
	for _, r := range name {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
			up = true
			continue
		}
		if up {
			r = unicode.ToUpper(r)
			up = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// walk calls f on every map in v, with its JSON pointer.
func walk(v any, where string, f func(where string, m map[string]any)) {
	switch v := v.(type) {
	case map[string]any:
		f(where, v)
		for k, c := range v {
			walk(c, where+"/"+pointer(k), f)
		}
	case []any:
		for i, c := range v {
			walk(c, fmt.Sprintf("%s/%d", where, i), f)
		}
	}
}
