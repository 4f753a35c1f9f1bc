package redis_test

import (
	"bytes"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// relay is a TCP relay on a loopback port in front of one Redis node, which
// a test can make lose replies:
//
//   - dropScriptReplies(n): the next n replies to a script call (EVAL or
//     EVALSHA, except a NOSCRIPT refusal) are not forwarded: the relay
//     resets the client's connection instead, after Redis ran the script;
//   - stall: replies are held until unstall, so a client's deadline passes
//     while Redis has already answered;
//   - down: the listener and every connection close, so a dial is refused.
type relay struct {
	target string
	ln     net.Listener

	drop atomic.Int32

	mu      sync.Mutex
	stalled chan struct{} // non-nil while replies are held
	pairs   map[*relayPair]struct{}
	closed  bool
	wg      sync.WaitGroup
}

type relayPair struct {
	client, server net.Conn
	script         atomic.Bool // the last command sent was a script call
	done           chan struct{}
	once           sync.Once
}

func (p *relayPair) close() {
	p.once.Do(func() {
		if tc, ok := p.client.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset, as a dropped route or crashed node gives
		}
		p.client.Close()
		p.server.Close()
		close(p.done)
	})
}

func startRelay(t testing.TB, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{target: target, ln: ln, pairs: map[*relayPair]struct{}{}}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.down)
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		p := &relayPair{client: c, server: s, done: make(chan struct{})}
		r.mu.Lock()
		if r.closed {
			r.mu.Unlock()
			p.close()
			return
		}
		r.pairs[p] = struct{}{}
		r.wg.Add(2)
		r.mu.Unlock()
		go r.up(p)
		go r.downstream(p)
	}
}

// up forwards commands, noting script calls.
func (r *relay) up(p *relayPair) {
	defer r.wg.Done()
	defer p.close()
	buf := make([]byte, 64<<10)
	for {
		n, err := p.client.Read(buf)
		if n > 0 {
			low := bytes.ToLower(buf[:n])
			if bytes.Contains(low, []byte("\r\nevalsha\r\n")) || bytes.Contains(low, []byte("\r\neval\r\n")) {
				p.script.Store(true)
			}
			if _, werr := p.server.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// downstream forwards replies, unless told to lose or hold them.
func (r *relay) downstream(p *relayPair) {
	defer r.wg.Done()
	defer p.close()
	buf := make([]byte, 64<<10)
	for {
		n, err := p.server.Read(buf)
		if n > 0 {
			if p.script.Swap(false) && !bytes.HasPrefix(buf[:n], []byte("-NOSCRIPT")) {
				if left := r.drop.Add(-1); left >= 0 {
					return // the reply is lost; p.close resets the client
				}
				r.drop.Add(1)
			}
			r.mu.Lock()
			st := r.stalled
			r.mu.Unlock()
			if st != nil {
				select {
				case <-st:
				case <-p.done:
					return
				}
			}
			if _, werr := p.client.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (r *relay) dropScriptReplies(n int32) { r.drop.Store(n) }

func (r *relay) stall() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stalled == nil {
		r.stalled = make(chan struct{})
	}
}

func (r *relay) unstall() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stalled != nil {
		close(r.stalled)
		r.stalled = nil
	}
}

// down closes the listener and every connection; later dials are refused.
func (r *relay) down() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.ln.Close()
	for p := range r.pairs {
		p.close()
	}
	if r.stalled != nil {
		close(r.stalled)
		r.stalled = nil
	}
	r.mu.Unlock()
	r.wg.Wait()
}
