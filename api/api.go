// Package api holds the OpenAPI description of ticketrush's HTTP API. The
// server serves it at /api/openapi.yaml and the tests check every response
// they get against it.
package api

import _ "embed"

// OpenAPI is the OpenAPI 3.0 document of the HTTP API, in YAML.
//
//go:embed openapi.yaml
var OpenAPI []byte
