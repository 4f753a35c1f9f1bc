package e2e

import (
	"bytes"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// proxy is a TCP proxy on a loopback port in front of a database server,
// which a test can cut:
//
//   - sever closes every connection (with a reset, as a crashed server or
//     a dropped route does) and resets every new one at once;
//   - blackhole keeps every connection open but forwards nothing, and
//     accepts new ones without ever connecting them, as a network
//     partition does: only the client's own deadlines end its waits;
//   - heal closes what the outage left half-open and forwards again.
type proxy struct {
	t      testing.TB
	target string
	ln     net.Listener

	mu    sync.Mutex
	state int
	// cond is broadcast when state changes; pumps of a blackholed
	// connection wait on it.
	cond  *sync.Cond
	pairs map[*pair]struct{}
	held  map[net.Conn]struct{} // accepted during a blackhole, never connected
	wg    sync.WaitGroup
	// cutTag and cutDone, when set, arm a cut (see cutNextCommit).
	cutTag  []byte
	cutDone chan struct{}
}

const (
	proxyUp = iota
	proxySevered
	proxyBlackholed
	proxyClosed
)

// pair is one proxied connection. frozen marks a pair a blackhole caught:
// it never forwards again and is closed when the outage ends.
type pair struct {
	client, server net.Conn
	frozen         bool
	once           sync.Once
}

func (p *pair) close() {
	p.once.Do(func() {
		reset(p.client)
		p.server.Close()
	})
}

// reset closes c with a TCP reset rather than an orderly FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// startProxy listens on a loopback port and forwards to target until the
// test ends.
func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, target: target, ln: ln, pairs: map[*pair]struct{}{}, held: map[net.Conn]struct{}{}}
	p.cond = sync.NewCond(&p.mu)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// Addr is the proxy's host:port.
func (p *proxy) Addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		state := p.state
		if state == proxyBlackholed {
			p.held[c] = struct{}{}
		}
		p.mu.Unlock()
		switch state {
		case proxyUp:
			p.wg.Add(1)
			go p.connect(c)
		case proxySevered, proxyClosed:
			reset(c)
		}
	}
}

// connect dials the target for client c and pumps bytes both ways.
func (p *proxy) connect(c net.Conn) {
	defer p.wg.Done()
	s, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		reset(c)
		return
	}
	pr := &pair{client: c, server: s}
	p.mu.Lock()
	if p.state != proxyUp {
		p.mu.Unlock()
		pr.close()
		return
	}
	p.pairs[pr] = struct{}{}
	p.mu.Unlock()
	p.wg.Add(2)
	go p.pump(pr, c, s)
	go p.pump(pr, s, c)
}

// pgCommandComplete is PostgreSQL's CommandComplete message with tag: the
// server sends it once the statement is done (for COMMIT, or for a
// statement outside a transaction, once it is durable).
func pgCommandComplete(tag string) []byte {
	n := 4 + len(tag) + 1
	return append([]byte{'C', byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, append([]byte(tag), 0)...)
}

// cutNextCommit arms the proxy to drop the answer of the next COMMIT that
// PostgreSQL confirms, and to reset that connection at once: the
// transaction is committed, the client never hears so. The returned
// channel is closed when it has happened.
func (p *proxy) cutNextCommit() <-chan struct{} { return p.cutNextTag("COMMIT") }

// cutNextTag is cutNextCommit for the next statement completed with tag,
// e.g. "UPDATE 1" for a single-statement write.
func (p *proxy) cutNextTag(tag string) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cutTag = pgCommandComplete(tag)
	p.cutDone = make(chan struct{})
	return p.cutDone
}

// pump copies src to dst until either side fails or the pair is cut.
func (p *proxy) pump(pr *pair, src, dst net.Conn) {
	defer p.wg.Done()
	defer func() {
		pr.close()
		p.mu.Lock()
		delete(p.pairs, pr)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			for pr.frozen && p.state == proxyBlackholed {
				// The bytes fall into the hole.
				p.cond.Wait()
			}
			cut := pr.frozen || p.state != proxyUp
			if !cut && p.cutDone != nil && src == pr.server && bytes.Contains(buf[:n], p.cutTag) {
				close(p.cutDone)
				p.cutTag, p.cutDone = nil, nil
				cut = true
			}
			p.mu.Unlock()
			if cut {
				return
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// sever closes every connection and resets new ones until heal.
func (p *proxy) sever() {
	p.mu.Lock()
	p.state = proxySevered
	pairs := p.takePairs()
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, pr := range pairs {
		pr.close()
	}
}

// blackhole stops forwarding on every connection and leaves new ones
// unanswered until heal.
func (p *proxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.state = proxyBlackholed
	for pr := range p.pairs {
		pr.frozen = true
	}
}

// heal ends an outage: connections it caught are closed (their clients'
// view of them is lost), new ones are forwarded again.
func (p *proxy) heal() {
	p.mu.Lock()
	p.state = proxyUp
	var stale []*pair
	for pr := range p.pairs {
		if pr.frozen {
			stale = append(stale, pr)
			delete(p.pairs, pr)
		}
	}
	held := p.held
	p.held = map[net.Conn]struct{}{}
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, pr := range stale {
		pr.close()
	}
	for c := range held {
		reset(c)
	}
}

// takePairs removes and returns every pair; p.mu is held.
func (p *proxy) takePairs() []*pair {
	var out []*pair
	for pr := range p.pairs {
		out = append(out, pr)
		delete(p.pairs, pr)
	}
	return out
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	p.state = proxyClosed
	pairs := p.takePairs()
	held := p.held
	p.held = map[net.Conn]struct{}{}
	p.cond.Broadcast()
	p.mu.Unlock()
	for _, pr := range pairs {
		pr.close()
	}
	for c := range held {
		reset(c)
	}
	p.wg.Wait()
}
