package httpapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/ticketrush/ticketrush"
)

// headerAdmissionPass carries an admitted visitor's pass on reserve.
const headerAdmissionPass = "Admission-Pass"

// PassKey is one secret of the ring that signs admission passes and join
// challenges. Every node of a deployment must know the same keys.
type PassKey struct {
	// ID names the key inside each pass, so a node can pick the key a
	// pass was signed with: 1 to 32 characters of [A-Za-z0-9_-].
	ID string
	// Secret is at least MinPassSecret bytes.
	Secret []byte
}

// MinPassSecret is the shortest secret accepted, in bytes.
const MinPassSecret = 16

// ParsePassKeys reads a key ring written "kid:secret,kid2:secret2". The
// first key signs; every key verifies. Rotating is then: add the new key
// second on every node, move it first once all nodes know it, drop the old
// one after the longest pass has run out (pass_seconds).
func ParsePassKeys(s string) ([]PassKey, error) {
	var keys []PassKey
	seen := map[string]bool{}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		id, secret, ok := strings.Cut(f, ":")
		if !ok {
			return nil, fmt.Errorf("pass key %q: want kid:secret", truncate(f, 8))
		}
		if !validKeyID(id) {
			return nil, fmt.Errorf("pass key id %q: want 1 to 32 characters of A-Z, a-z, 0-9, _ and -", truncate(id, 40))
		}
		if len(secret) < MinPassSecret {
			return nil, fmt.Errorf("pass key %q: the secret must be at least %d characters", id, MinPassSecret)
		}
		if seen[id] {
			return nil, fmt.Errorf("pass key %q is listed twice", id)
		}
		seen[id] = true
		keys = append(keys, PassKey{ID: id, Secret: []byte(secret)})
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no pass key given: want kid:secret[,kid2:secret2…]")
	}
	return keys, nil
}

// DerivedPassKey derives a pass key from a deployment secret that every
// node already shares (the admin token), for deployments that set no pass
// keys: passes then verify on every node without more configuration.
func DerivedPassKey(secret string) PassKey {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("ticketrush/derived-pass-key/v1"))
	return PassKey{ID: "derived", Secret: m.Sum(nil)}
}

// RandomPassKey returns a key known to this process only: passes it signs
// verify on no other node.
func RandomPassKey() PassKey {
	b := make([]byte, 32)
	rand.Read(b)
	return PassKey{ID: "local", Secret: b}
}

func validKeyID(id string) bool {
	if id == "" || len(id) > 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// keyring holds the keys derived from each PassKey: one for passes and one
// for challenges, so a value signed for one purpose is never accepted for
// the other.
type keyring struct {
	signer string // ID of the key that signs
	keys   map[string]derivedKeys
}

type derivedKeys struct {
	pass, challenge []byte
}

func newKeyring(keys []PassKey) *keyring {
	kr := &keyring{keys: make(map[string]derivedKeys, len(keys))}
	for i, k := range keys {
		if i == 0 {
			kr.signer = k.ID
		}
		kr.keys[k.ID] = derivedKeys{
			pass:      derive(k.Secret, "ticketrush/admission-pass/v1"),
			challenge: derive(k.Secret, "ticketrush/join-challenge/v1"),
		}
	}
	return kr
}

func derive(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// Pass is what an admission pass proves: this visitor was admitted to this
// event's queue on this attempt, and may reserve until ExpiresAt.
type Pass struct {
	EventID int64
	Visitor string // canonical lower-case UUID
	Attempt int64
	// ExpiresAt is the entry's PassExpiresAt, to the microsecond.
	ExpiresAt time.Time
}

// passPayloadLen is version, event id, visitor, attempt, expiry.
const passPayloadLen = 1 + 8 + 16 + 8 + 8

const passVersion = 1

var b64 = base64.RawURLEncoding

// sign returns the pass as "kid.payload.mac" (base64url), with the MAC
// an HMAC-SHA256 of the payload under the signing key. It needs no state:
// any node with the key verifies it without a database read.
func (kr *keyring) sign(p Pass) (string, error) {
	u, err := uuid.Parse(p.Visitor)
	if err != nil {
		return "", fmt.Errorf("sign pass: visitor: %w", err)
	}
	var payload [passPayloadLen]byte
	payload[0] = passVersion
	binary.BigEndian.PutUint64(payload[1:], uint64(p.EventID))
	copy(payload[9:], u[:])
	binary.BigEndian.PutUint64(payload[25:], uint64(p.Attempt))
	binary.BigEndian.PutUint64(payload[33:], uint64(p.ExpiresAt.UnixMicro()))
	k := kr.keys[kr.signer]
	m := hmac.New(sha256.New, k.pass)
	m.Write(payload[:])
	var b strings.Builder
	b.Grow(len(kr.signer) + 2 + b64.EncodedLen(passPayloadLen) + b64.EncodedLen(sha256.Size))
	b.WriteString(kr.signer)
	b.WriteByte('.')
	b.WriteString(b64.EncodeToString(payload[:]))
	b.WriteByte('.')
	b.WriteString(b64.EncodeToString(m.Sum(nil)))
	return b.String(), nil
}

// verify checks a pass's signature and that it names this visitor and
// event. It does not check expiry: the caller compares ExpiresAt with its
// clock, so a retry under an Idempotency-Key can still reach the store.
// Every failure is EAdmissionInvalid with one message, so a client learns
// nothing about which part was wrong.
func (kr *keyring) verify(s string, eventID int64, visitor string) (Pass, error) {
	invalid := ticketrush.Errorf(ticketrush.EAdmissionInvalid, "This Admission-Pass is not valid for this visitor and event.")
	kid, rest, ok := strings.Cut(s, ".")
	if !ok {
		return Pass{}, invalid
	}
	enc, macEnc, ok := strings.Cut(rest, ".")
	if !ok || len(enc) != b64.EncodedLen(passPayloadLen) || len(macEnc) != b64.EncodedLen(sha256.Size) {
		return Pass{}, invalid
	}
	k, ok := kr.keys[kid]
	if !ok {
		return Pass{}, invalid
	}
	var payload [passPayloadLen]byte
	var mac [sha256.Size]byte
	if n, err := b64.Decode(payload[:], []byte(enc)); err != nil || n != passPayloadLen {
		return Pass{}, invalid
	}
	if n, err := b64.Decode(mac[:], []byte(macEnc)); err != nil || n != sha256.Size {
		return Pass{}, invalid
	}
	m := hmac.New(sha256.New, k.pass)
	m.Write(payload[:])
	if !hmac.Equal(m.Sum(nil), mac[:]) || payload[0] != passVersion {
		return Pass{}, invalid
	}
	var u uuid.UUID
	copy(u[:], payload[9:25])
	p := Pass{
		EventID:   int64(binary.BigEndian.Uint64(payload[1:])),
		Visitor:   u.String(),
		Attempt:   int64(binary.BigEndian.Uint64(payload[25:])),
		ExpiresAt: time.UnixMicro(int64(binary.BigEndian.Uint64(payload[33:]))).UTC(),
	}
	if p.EventID != eventID || p.Visitor != visitor || p.Attempt < 1 {
		return Pass{}, invalid
	}
	return p, nil
}
