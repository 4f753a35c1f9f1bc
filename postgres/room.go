package postgres

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/ticketrush/ticketrush"
)

// roomJSON is how events.waiting_room stores a room's settings: the API's
// field names, so the column reads like the request that set it.
type roomJSON struct {
	AdmitPerMinute  int64      `json:"admit_per_minute"`
	MaxActive       int64      `json:"max_active"`
	PassSeconds     int64      `json:"pass_seconds"`
	PrequeueOpensAt *time.Time `json:"prequeue_opens_at"`
	ChallengeBits   int64      `json:"challenge_bits"`
	Paused          bool       `json:"paused"`
}

// normalizeRoom returns a copy of w with its time in UTC at the precision
// the database keeps, so what a method returns equals what a later read
// returns; nil stays nil.
func normalizeRoom(w *ticketrush.WaitingRoom) *ticketrush.WaitingRoom {
	if w == nil {
		return nil
	}
	c := *w
	if c.PrequeueOpensAt != nil {
		t := c.PrequeueOpensAt.UTC().Truncate(time.Microsecond)
		c.PrequeueOpensAt = &t
	}
	return &c
}

// encodeRoom gives the column's value: nil (SQL NULL) for no room.
func encodeRoom(w *ticketrush.WaitingRoom) ([]byte, error) {
	if w == nil {
		return nil, nil
	}
	return json.Marshal(roomJSON{
		AdmitPerMinute:  w.AdmitPerMinute,
		MaxActive:       w.MaxActive,
		PassSeconds:     w.PassSeconds,
		PrequeueOpensAt: w.PrequeueOpensAt,
		ChallengeBits:   w.ChallengeBits,
		Paused:          w.Paused,
	})
}

func decodeRoom(b []byte) (*ticketrush.WaitingRoom, error) {
	if b == nil {
		return nil, nil
	}
	var j roomJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("events.waiting_room: %w", err)
	}
	w := &ticketrush.WaitingRoom{
		AdmitPerMinute:  j.AdmitPerMinute,
		MaxActive:       j.MaxActive,
		PassSeconds:     j.PassSeconds,
		PrequeueOpensAt: j.PrequeueOpensAt,
		ChallengeBits:   j.ChallengeBits,
		Paused:          j.Paused,
	}
	if w.PrequeueOpensAt != nil {
		t := w.PrequeueOpensAt.UTC()
		w.PrequeueOpensAt = &t
	}
	return w, nil
}
