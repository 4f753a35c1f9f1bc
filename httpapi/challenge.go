package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"math/bits"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/ticketrush/ticketrush"
)

// ChallengeTTL is how long a join challenge may be used after it was
// issued: long enough for a phone to solve the hardest one
// (ticketrush.MaxChallengeBits), short enough that solutions cannot be
// stockpiled days ahead.
const ChallengeTTL = 10 * time.Minute

// JoinAttempt is what a JoinVerifier sees of one join.
type JoinAttempt struct {
	Event *ticketrush.Event
	// Visitor is the joining visitor's token in lower case.
	Visitor string
	// Challenge and Nonce are the join body's fields, "" when absent.
	Challenge, Nonce string
	// Request is the HTTP request, for verifiers that read a header (a
	// Turnstile or hCaptcha response, a Private Access Token). Its body has
	// been read.
	Request *http.Request
	// Now is the server's clock.
	Now time.Time
}

// JoinVerifier decides whether a join may go ahead, so a deployment can
// add an external challenge (Turnstile, hCaptcha, Private Access Tokens)
// beside the built-in proof of work. A join must pass every verifier.
type JoinVerifier interface {
	// VerifyJoin returns nil to let the join go ahead, or an error to
	// refuse it (a *ticketrush.Error such as EChallengeFailed is answered
	// as such). proof, when not "", identifies what was proven. The first
	// verifier's non-empty proof (the proof of work's challenge, when the
	// room asks one) is stored with the entry, and a visitor cannot make a
	// new entry with the proof of its previous one, so it works once.
	VerifyJoin(ctx context.Context, j JoinAttempt) (proof string, err error)
}

// challenger issues and checks the stateless proof-of-work challenges of
// joins. A challenge is "bits.expiry.attempt.random.kid.mac": the MAC
// (HMAC-SHA256 under the key ring's challenge key) binds the event, the
// visitor token, the difficulty, the expiry, the attempt and the random
// part, so any node can check a challenge another issued, and it is
// worthless for any other event or visitor. It works once because it names
// the attempt (the visitor's entry number) it may create: once that entry
// exists, the challenge can only answer for it, never make another. The
// store also refuses a new entry with the previous entry's challenge.
type challenger struct {
	keys *keyring
}

// challengeRandLen is the random part's length in bytes.
const challengeRandLen = 16

// issue returns a new challenge of the given difficulty for the visitor.
// attempt is the entry the challenge may create: the visitor's current
// attempt + 1.
func (c *challenger) issue(eventID int64, visitor string, bits, attempt int64, now time.Time) (string, time.Time) {
	exp := now.Add(ChallengeTTL).Truncate(time.Second)
	var rnd [challengeRandLen]byte
	rand.Read(rnd[:])
	head := strconv.FormatInt(bits, 10) + "." + strconv.FormatInt(exp.Unix(), 10) + "." +
		strconv.FormatInt(attempt, 10) + "." + b64.EncodeToString(rnd[:])
	kid := c.keys.signer
	return head + "." + kid + "." + b64.EncodeToString(c.mac(c.keys.keys[kid].challenge, eventID, visitor, head)), exp
}

func (c *challenger) mac(key []byte, eventID int64, visitor, head string) []byte {
	m := hmac.New(sha256.New, key)
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], uint64(eventID))
	m.Write(id[:])
	m.Write([]byte(visitor))
	m.Write([]byte{0})
	m.Write([]byte(head))
	return m.Sum(nil)
}

// errChallenge is every refusal of a challenge: which check failed is no
// business of a client trying to cheat.
func errChallenge() error {
	return ticketrush.Errorf(ticketrush.EChallengeFailed, "The challenge was not solved: fetch a new one and try again.")
}

// check verifies a solved challenge: signed by a key of the ring for this
// event and visitor, unexpired, at least as hard as the room now asks,
// SHA-256(challenge ":" visitor ":" nonce) starting with as many zero bits
// as the challenge names, and, last (it may read the database, which a
// forged challenge must not cost), issued for an attempt that ok accepts.
func (c *challenger) check(eventID int64, visitor string, want int64, challenge, nonce string, now time.Time, ok func(attempt int64) error) error {
	if !validNonce(nonce) || len(challenge) > 200 {
		return errChallenge()
	}
	parts := strings.Split(challenge, ".")
	if len(parts) != 6 {
		return errChallenge()
	}
	bitsStr, expStr, attemptStr, kid, macStr := parts[0], parts[1], parts[2], parts[4], parts[5]
	k, found := c.keys.keys[kid]
	if !found {
		return errChallenge()
	}
	mac, err := b64.DecodeString(macStr)
	if err != nil {
		return errChallenge()
	}
	head := challenge[:len(bitsStr)+1+len(expStr)+1+len(attemptStr)+1+len(parts[3])]
	if !hmac.Equal(mac, c.mac(k.challenge, eventID, visitor, head)) {
		return errChallenge()
	}
	// Signed by us, so these parse.
	n, _ := strconv.ParseInt(bitsStr, 10, 64)
	exp, _ := strconv.ParseInt(expStr, 10, 64)
	attempt, _ := strconv.ParseInt(attemptStr, 10, 64)
	if n < want || !now.Before(time.Unix(exp, 0)) {
		return errChallenge()
	}
	if leadingZeroBits(solutionHash(challenge, visitor, nonce)) < int(n) {
		return errChallenge()
	}
	return ok(attempt)
}

// solutionHash is SHA-256 of the UTF-8 string challenge ":" visitor ":" nonce.
func solutionHash(challenge, visitor, nonce string) [sha256.Size]byte {
	return sha256.Sum256([]byte(challenge + ":" + visitor + ":" + nonce))
}

// leadingZeroBits counts zero bits from the most significant bit of the
// first byte.
func leadingZeroBits(h [sha256.Size]byte) int {
	n := 0
	for _, b := range h {
		if b != 0 {
			return n + bits.LeadingZeros8(b)
		}
		n += 8
	}
	return n
}

// validNonce reports whether s is 1 to 64 characters of [A-Za-z0-9].
func validNonce(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// proofOfWork is the built-in JoinVerifier: when the room's challenge_bits
// is above 0, a join must carry a challenge from GET
// /api/events/{id}/queue/challenge and a nonce solving it.
type proofOfWork struct {
	c *challenger
	// entry reads the visitor's current entry (nil when it never joined),
	// to learn which attempt a challenge may still answer for.
	entry func(ctx context.Context, eventID int64, visitor string) (*ticketrush.QueueEntry, error)
}

// VerifyJoin implements JoinVerifier. The proof is the challenge itself.
func (p proofOfWork) VerifyJoin(ctx context.Context, j JoinAttempt) (string, error) {
	w := j.Event.WaitingRoom
	if w == nil || w.ChallengeBits == 0 {
		return "", nil
	}
	if j.Challenge == "" || j.Nonce == "" {
		return "", errChallenge()
	}
	// A challenge creates the entry after the visitor's current one; while
	// the entry it created is live it still answers for it (a retried join
	// whose answer was lost keeps its place), and never again after.
	ok := func(a int64) error {
		en, err := p.entry(ctx, j.Event.ID, j.Visitor)
		if err != nil {
			return err
		}
		var cur int64
		live := false
		if en != nil {
			cur, live = en.Attempt, en.State != ticketrush.QueueExpired
		}
		if a == cur+1 || (live && a == cur) {
			return nil
		}
		return errChallenge()
	}
	if err := p.c.check(j.Event.ID, j.Visitor, w.ChallengeBits, j.Challenge, j.Nonce, j.Now, ok); err != nil {
		return "", err
	}
	return j.Challenge, nil
}

// nextAttempt is the attempt of the visitor's next new entry: 1 when it
// never joined.
func nextAttempt(en *ticketrush.QueueEntry) int64 {
	if en == nil {
		return 1
	}
	return en.Attempt + 1
}
