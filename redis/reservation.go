package redis

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketrush/ticketrush"
)

func errReservationNotFound() error {
	return ticketrush.ErrReservationNotFound()
}

// Reservation returns a reservation of the given visitor as stored: a hold
// past its ExpiresAt that no one has released yet still reads as reserved.
// The id names the event, so this is one HGET in the event's slot.
func (s *Store) Reservation(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	eventID, n, ok := splitID(id)
	if !ok {
		return nil, errReservationNotFound()
	}
	rec, err := s.rdb.HGet(ctx, s.eventBase(eventID)+":res", strconv.FormatInt(n, 10)).Result()
	if errors.Is(err, goredis.Nil) {
		return nil, errReservationNotFound()
	}
	if err != nil {
		return nil, s.fail(err)
	}
	r, err := parseRecord(eventID, n, rec)
	if err != nil {
		return nil, err
	}
	if r.UserUID != strings.ToLower(visitor) {
		return nil, errReservationNotFound()
	}
	return r, nil
}

// Purchase turns the visitor's unexpired hold into a sale, in one call of
// purchase.lua.
func (s *Store) Purchase(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	return s.settle(ctx, purchaseScript, id, visitor, s.newRun(ctx))
}

// Cancel puts the visitor's hold back on sale at once, in one call of
// cancel.lua.
func (s *Store) Cancel(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	return s.settle(ctx, cancelScript, id, visitor, "")
}

func (s *Store) settle(ctx context.Context, sc *goredis.Script, id int64, visitor, run string) (*ticketrush.Reservation, error) {
	eventID, n, ok := splitID(id)
	if !ok {
		return nil, errReservationNotFound()
	}
	ctx = writing(ctx)
	answer, err := sc.Run(ctx, s.rdb, s.eventKeys(eventID, run, 0), s.clockArg(), n, strings.ToLower(visitor)).Text()
	if err != nil {
		return nil, s.failWrite(ctx, err)
	}
	if strings.HasPrefix(answer, "!") {
		return nil, outcome(answer)
	}
	return parseRecord(eventID, n, answer)
}

// sweepChunk is how many events ReleaseExpired looks at per round trip.
const sweepChunk = 256

// clockSlack widens the sweep's first look at each event, which compares
// expiry times with one reading of the clock while the scripts read their
// own (on a cluster, each primary's).
const clockSlack = 2 * time.Second

// ReleaseExpired releases at most limit expired holds across all events. It
// reads the earliest expiry of each event in one pipeline, then runs
// release_expired.lua on the events that have expired holds, each call
// releasing at most releaseChunk of them (so no call blocks Redis for
// long), until the event has none left or limit is reached. The script takes holds out of the event's holds set and
// releases them in one atomic step, so a hold is released exactly once
// however many processes sweep at the same time.
func (s *Store) ReleaseExpired(ctx context.Context, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	ids, err := s.eventIDs(ctx)
	if err != nil || len(ids) == 0 {
		return 0, err
	}
	var now time.Time
	if s.now != nil {
		now = s.now()
	} else if now, err = s.rdb.Time(ctx).Result(); err != nil {
		return 0, s.fail(err)
	}
	horizon := float64(now.Add(clockSlack).UnixMicro())

	released := 0
	for start := 0; start < len(ids); start += sweepChunk {
		chunk := ids[start:min(start+sweepChunk, len(ids))]
		first := make([]*goredis.ZSliceCmd, len(chunk))
		_, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
			for i, id := range chunk {
				first[i] = p.ZRangeWithScores(ctx, s.eventBase(id)+":holds", 0, 0)
			}
			return nil
		})
		if err != nil {
			return released, s.fail(err)
		}
		for i, id := range chunk {
			z := first[i].Val()
			if len(z) == 0 || z[0].Score > horizon {
				continue
			}
			for {
				want := min(limit-released, releaseChunk)
				n, err := releaseExpiredScript.Run(ctx, s.rdb, s.eventKeys(id, "", 0), s.clockArg(), want).Int()
				if err != nil {
					return released, s.fail(err)
				}
				released += n
				if released >= limit {
					return released, nil
				}
				if n < want {
					break
				}
			}
		}
	}
	return released, nil
}
