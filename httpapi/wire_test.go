package httpapi

import (
	"encoding/json"
	"testing"
	"time"
)

// TestAppendReservation: the hand-written encoding of reserve's answer is
// byte for byte what encoding/json writes.
func TestAppendReservation(t *testing.T) {
	at := time.Date(2025, 11, 18, 7, 49, 23, 0, time.UTC)
	for _, r := range []Reservation{
		{ID: 4, EventID: 1, UserUID: "c9439d95-2123-4d0b-8967-50903fc0b9a8", Amount: 10, Status: "reserved",
			ExpiresAt: Time{at.Add(5 * time.Minute)}, CreatedAt: Time{at}, UpdatedAt: Time{at.Add(123456 * time.Microsecond)}},
		{ID: 1 << 52, EventID: 1<<63 - 1, UserUID: "odd \"<&>\\\u00e7\n", Amount: 1, Status: "purchased",
			ExpiresAt: Time{at.In(time.FixedZone("x", 3*3600))}, CreatedAt: Time{at}, UpdatedAt: Time{at}},
	} {
		want, err := json.Marshal(Envelope[Reservation]{Data: r})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendReservation(nil, &r); string(got) != string(want) {
			t.Errorf("appendReservation:\n got %s\nwant %s", got, want)
		}
	}
}

// TestAppendQueueStatus: the hand-written encoding of a queue answer is
// byte for byte what encoding/json writes.
func TestAppendQueueStatus(t *testing.T) {
	at := Time{time.Date(2025, 11, 18, 7, 49, 23, 120000000, time.FixedZone("x", 3600))}
	n, z := int64(1234567), int64(0)
	pass := "k1.abc_-.def"
	for _, q := range []QueueStatus{
		{EventID: 1, State: "prequeue"},
		{EventID: 1<<63 - 1, State: "waiting", Position: &n, Ahead: &z, EstimatedWaitSeconds: &n},
		{EventID: 3, State: "admitted", Position: &n, Ahead: &z, EstimatedWaitSeconds: &z, Pass: &pass, PassExpiresAt: &at},
	} {
		want, err := json.Marshal(Envelope[QueueStatus]{Data: q})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendQueueStatus(nil, &q); string(got) != string(want) {
			t.Errorf("appendQueueStatus:\n got %s\nwant %s", got, want)
		}
	}
}
