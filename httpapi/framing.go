package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/ticketrush/ticketrush"
)

// Listener wraps ln so that the answers Go's HTTP server gives by itself,
// before any handler runs, are the API's JSON errors with a 4xx status like
// every other answer: a malformed request line or header block (400
// bad_request), headers over maxHeaderBytes (431 headers_too_large), a
// transfer coding or HTTP version the server does not speak (Go's 501 and
// 505, answered 400 bad_request: they are bad input, not a fault of the
// service). net/http writes those answers as plain text straight to the
// connection, outside every handler, so the connection is where they are
// rewritten.
func Listener(ln net.Listener, maxHeaderBytes int) net.Listener {
	return &jsonErrorListener{Listener: ln, maxHeaderBytes: maxHeaderBytes}
}

type jsonErrorListener struct {
	net.Listener
	maxHeaderBytes int
}

func (l *jsonErrorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &jsonErrorConn{Conn: c, maxHeaderBytes: l.maxHeaderBytes}, nil
}

// jsonErrorConn is a connection whose writes of net/http's own error
// answers are replaced by JSON ones.
type jsonErrorConn struct {
	net.Conn
	maxHeaderBytes int
}

// CloseWrite keeps what net/http does after a 431 on a TCP connection:
// send FIN, then let the client read the answer before closing.
func (c *jsonErrorConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *jsonErrorConn) Write(p []byte) (int, error) {
	b, ok := rewriteServerError(p, c.maxHeaderBytes)
	if !ok {
		return c.Conn.Write(p)
	}
	if _, err := c.Conn.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// goErrorHeaders follow the status line of every answer net/http writes
// itself (server.go, conn.serve). A handler's answer never matches them:
// net/http adds a Date header to each, and orders Connection before
// Content-Type.
const goErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// rewriteServerError returns the JSON answer replacing p when p is one of
// net/http's own plain-text error answers, written whole in one call.
func rewriteServerError(p []byte, maxHeaderBytes int) ([]byte, bool) {
	const proto = "HTTP/1.1 "
	if !bytes.HasPrefix(p, []byte(proto)) {
		return nil, false
	}
	eol := bytes.Index(p, []byte("\r\n"))
	if eol < len(proto)+3 || !bytes.HasPrefix(p[eol:], []byte(goErrorHeaders)) {
		return nil, false
	}
	status, err := strconv.Atoi(string(p[len(proto) : len(proto)+3]))
	if err != nil {
		return nil, false
	}
	// What net/http says after the status, e.g. "missing required Host
	// header": one of its own fixed texts, never the client's bytes.
	var reason string
	if _, after, found := bytes.Cut(p[len(proto)+3:eol], []byte(":")); found {
		reason = string(bytes.TrimSpace(after))
	}
	var e *ticketrush.Error
	switch status {
	case http.StatusRequestHeaderFieldsTooLarge:
		e = ticketrush.Errorf(ticketrush.EHeadersTooLarge,
			"The request headers must be at most %d KiB in all.", maxHeaderBytes>>10)
	case http.StatusNotImplemented:
		e = ticketrush.Errorf(ticketrush.EBadRequest,
			"The request is not valid HTTP/1.1: unsupported Transfer-Encoding (send chunked, or a Content-Length).")
	case http.StatusHTTPVersionNotSupported:
		e = ticketrush.Errorf(ticketrush.EBadRequest, "The request is not valid HTTP/1.1: unsupported protocol version.")
	default:
		msg := "The request is not valid HTTP/1.1."
		if reason != "" {
			msg = "The request is not valid HTTP/1.1: " + reason + "."
		}
		e = ticketrush.Errorf(ticketrush.EBadRequest, "%s", msg)
	}
	code := StatusOf(e.Code)
	body, err := json.Marshal(ErrorBody{Error: ErrorDetail{Code: e.Code, Message: e.Message}})
	if err != nil {
		return nil, false
	}
	body = append(body, '\n')
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
		code, http.StatusText(code), len(body))
	b.Write(body)
	return b.Bytes(), true
}
