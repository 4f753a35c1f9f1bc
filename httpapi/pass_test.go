package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

var (
	testKey1 = PassKey{ID: "k1", Secret: []byte("first-secret-0123456789")}
	testKey2 = PassKey{ID: "k2", Secret: []byte("second-secret-0123456789")}
)

const (
	visitorA = "0b7e8f3a-1c2d-4e5f-8a9b-0c1d2e3f4a5b"
	visitorB = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
)

func TestPassRoundTrip(t *testing.T) {
	kr := newKeyring([]PassKey{testKey1})
	exp := start.Add(5 * time.Minute)
	s, err := kr.sign(Pass{EventID: 7, Visitor: visitorA, Attempt: 2, ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "k1.") {
		t.Errorf("pass %q does not name its key", s)
	}
	p, err := kr.verify(s, 7, visitorA)
	if err != nil {
		t.Fatal(err)
	}
	if p.EventID != 7 || p.Visitor != visitorA || p.Attempt != 2 || !p.ExpiresAt.Equal(exp) {
		t.Errorf("verified %+v", p)
	}
}

func TestPassRefusals(t *testing.T) {
	kr := newKeyring([]PassKey{testKey1})
	s, _ := kr.sign(Pass{EventID: 7, Visitor: visitorA, Attempt: 1, ExpiresAt: start})
	kid, rest, _ := strings.Cut(s, ".")
	payload, mac, _ := strings.Cut(rest, ".")
	flip := func(x string, i int) string {
		b := []byte(x)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	cases := map[string]struct {
		pass    string
		event   int64
		visitor string
	}{
		"another visitor":  {s, 7, visitorB},
		"another event":    {s, 8, visitorA},
		"payload changed":  {kid + "." + flip(payload, 3) + "." + mac, 7, visitorA},
		"mac changed":      {kid + "." + payload + "." + flip(mac, 5), 7, visitorA},
		"unknown key":      {"k9." + payload + "." + mac, 7, visitorA},
		"another key's id": {"k2." + payload + "." + mac, 7, visitorA},
		"truncated":        {s[:len(s)-2], 7, visitorA},
		"empty":            {"", 7, visitorA},
		"garbage":          {"a.b.c", 7, visitorA},
		"challenge as pass": {func() string {
			c := &challenger{keys: kr}
			ch, _ := c.issue(7, visitorA, 0, 1, start)
			return ch
		}(), 7, visitorA},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			kr := newKeyring([]PassKey{testKey1, {ID: "k2", Secret: []byte("another-secret-0123456789")}})
			_, err := kr.verify(c.pass, c.event, c.visitor)
			if ticketrush.ErrorCode(err) != ticketrush.EAdmissionInvalid {
				t.Errorf("verify = %v, want %s", err, ticketrush.EAdmissionInvalid)
			}
		})
	}
}

// TestPassKeyRotation walks a rotation: every node learns the new key
// (second), then signs with it (first), then forgets the old one. No pass
// issued on the way is refused by a node at the same or a later step.
func TestPassKeyRotation(t *testing.T) {
	steps := [][]PassKey{
		{testKey1},
		{testKey1, testKey2},
		{testKey2, testKey1},
	}
	for i, signer := range steps {
		kr := newKeyring(signer)
		pass, err := kr.sign(Pass{EventID: 1, Visitor: visitorA, Attempt: 1, ExpiresAt: start})
		if err != nil {
			t.Fatal(err)
		}
		for j := i; j < len(steps); j++ {
			if _, err := newKeyring(steps[j]).verify(pass, 1, visitorA); err != nil {
				t.Errorf("pass signed at step %d refused at step %d: %v", i, j, err)
			}
		}
	}
	// Once the old key is gone, its passes are refused: that is why it
	// stays until the longest pass has run out.
	old, _ := newKeyring([]PassKey{testKey1}).sign(Pass{EventID: 1, Visitor: visitorA, Attempt: 1, ExpiresAt: start})
	if _, err := newKeyring([]PassKey{testKey2}).verify(old, 1, visitorA); err == nil {
		t.Error("a pass of a dropped key was accepted")
	}
}

func TestParsePassKeys(t *testing.T) {
	keys, err := ParsePassKeys(" new:0123456789abcdefXYZ , old:fedcba9876543210:with-colon ")
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != "new" || string(keys[0].Secret) != "0123456789abcdefXYZ" ||
		keys[1].ID != "old" || string(keys[1].Secret) != "fedcba9876543210:with-colon" {
		t.Errorf("keys = %+v", keys)
	}
	for _, bad := range []string{"", ",", "nokey", "k:short", "a b:0123456789abcdef", "k:0123456789abcdef,k:0123456789abcdef", ":0123456789abcdef"} {
		if _, err := ParsePassKeys(bad); err == nil {
			t.Errorf("ParsePassKeys(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "0123456789abcdef") {
			t.Errorf("ParsePassKeys(%q): the error shows the secret: %v", bad, err)
		}
	}
}

func TestChallengeCheck(t *testing.T) {
	c := &challenger{keys: newKeyring([]PassKey{testKey1})}
	ch, exp := c.issue(3, visitorA, 8, 1, start)
	first := func(a int64) error {
		if a != 1 {
			return errChallenge()
		}
		return nil
	}
	if !exp.After(start) || exp.Sub(start) > ChallengeTTL {
		t.Errorf("expires %s, issued %s", exp, start)
	}
	nonce := solveChallenge(ch, visitorA, 8)
	if err := c.check(3, visitorA, 8, ch, nonce, start, first); err != nil {
		t.Fatalf("solved challenge refused: %v", err)
	}
	// A room made easier still accepts a harder challenge.
	if err := c.check(3, visitorA, 4, ch, nonce, start, first); err != nil {
		t.Errorf("harder challenge refused after the room got easier: %v", err)
	}
	wrong := "zz"
	for leadingZeroBits(solutionHash(ch, visitorA, wrong)) >= 8 {
		wrong += "z"
	}
	kr2 := newKeyring([]PassKey{testKey2})
	cases := map[string]func() error{
		"wrong nonce":     func() error { return c.check(3, visitorA, 8, ch, wrong, start, first) },
		"another visitor": func() error { return c.check(3, visitorB, 8, ch, nonce, start, first) },
		"another event":   func() error { return c.check(4, visitorA, 8, ch, nonce, start, first) },
		"expired":         func() error { return c.check(3, visitorA, 8, ch, nonce, exp, first) },
		"room got harder": func() error { return c.check(3, visitorA, 12, ch, nonce, start, first) },
		"bits lowered":    func() error { return c.check(3, visitorA, 0, "0"+ch[1:], nonce, start, first) },
		"unknown key":     func() error { return (&challenger{keys: kr2}).check(3, visitorA, 8, ch, nonce, start, first) },
		"empty nonce":     func() error { return c.check(3, visitorA, 8, ch, "", start, first) },
		"nonce too long":  func() error { return c.check(3, visitorA, 8, ch, strings.Repeat("a", 65), start, first) },
		"nonce not alnum": func() error { return c.check(3, visitorA, 8, ch, nonce+"-", start, first) },
		"garbage":         func() error { return c.check(3, visitorA, 0, "x", "1", start, first) },
		"another attempt": func() error {
			return c.check(3, visitorA, 8, ch, nonce, start, func(a int64) error {
				if a != 2 {
					return errChallenge()
				}
				return nil
			})
		},
		"pass as a challenge": func() error {
			p, _ := c.keys.sign(Pass{EventID: 3, Visitor: visitorA, Attempt: 1, ExpiresAt: start})
			return c.check(3, visitorA, 0, p, "1", start, first)
		},
	}
	for name, f := range cases {
		if err := f(); ticketrush.ErrorCode(err) != ticketrush.EChallengeFailed {
			t.Errorf("%s: %v, want %s", name, err, ticketrush.EChallengeFailed)
		}
	}
	// The attempt is checked last, as it may cost a database read: a
	// forged or unsolved challenge never gets that far.
	reads := 0
	count := func(int64) error { reads++; return nil }
	c.check(3, visitorA, 8, ch, wrong, start, count)
	c.check(3, visitorB, 8, ch, nonce, start, count)
	c.check(3, visitorA, 8, ch, nonce, exp, count)
	if reads != 0 {
		t.Errorf("the attempt was looked up for %d refused challenges", reads)
	}
}

func TestLeadingZeroBits(t *testing.T) {
	var h [32]byte
	if n := leadingZeroBits(h); n != 256 {
		t.Errorf("all zero: %d", n)
	}
	h[0] = 0x80
	if n := leadingZeroBits(h); n != 0 {
		t.Errorf("0x80: %d", n)
	}
	h[0], h[1] = 0, 0x10
	if n := leadingZeroBits(h); n != 11 {
		t.Errorf("00 10: %d", n)
	}
}

// solveChallenge finds a nonce by brute force, as a client does.
func solveChallenge(challenge, visitor string, bits int) string {
	for i := uint64(0); ; i++ {
		nonce := strconv36(i)
		if leadingZeroBits(solutionHash(challenge, visitor, nonce)) >= bits {
			return nonce
		}
	}
}

func strconv36(i uint64) string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 36 {
		b = append([]byte{digits[i%36]}, b...)
	}
	return string(b)
}
