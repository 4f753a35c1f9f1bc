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

// TestAppendTime: the hand-written time encoding is byte for byte
// time.AppendFormat with TimeFormat, in every zone and at the edges of its
// fixed width (outside years 0 to 9999 it is AppendFormat itself).
func TestAppendTime(t *testing.T) {
	zones := []*time.Location{time.UTC, time.FixedZone("east", 3*3600+1800), time.FixedZone("west", -11*3600)}
	times := []time.Time{
		time.Date(2025, 11, 18, 7, 49, 23, 0, time.UTC),
		time.Date(2025, 11, 18, 7, 49, 23, 999999999, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 123456789, time.UTC),
		time.Date(0, 1, 1, 0, 0, 0, 1000, time.UTC),
		time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		{},
		time.Unix(0, 0),
	}
	for i := range 1000 {
		times = append(times, time.Unix(int64(i)*7919*86400+int64(i)*3607, int64(i)*1000003))
	}
	for _, at := range times {
		for _, z := range zones {
			at := at.In(z)
			want := at.UTC().AppendFormat(nil, TimeFormat)
			if got := appendTime([]byte("x"), at); string(got) != "x"+string(want) {
				t.Errorf("appendTime(%v) = %s, want %s", at, got[1:], want)
			}
		}
	}
}

func BenchmarkAppendTime(b *testing.B) {
	at := time.Date(2025, 11, 18, 7, 49, 23, 123456789, time.UTC)
	buf := make([]byte, 0, 64)
	b.Run("appendTime", func(b *testing.B) {
		for b.Loop() {
			buf = appendTime(buf[:0], at)
		}
	})
	b.Run("AppendFormat", func(b *testing.B) {
		for b.Loop() {
			buf = at.UTC().AppendFormat(buf[:0], TimeFormat)
		}
	})
}
