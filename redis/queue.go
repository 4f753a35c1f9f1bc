package redis

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketrush/ticketrush"
)

// The waiting room lives with its event, under the event's hash tag, so each
// step of a queue is one script on one primary (see lua/lib.lua for the
// keys). A queue entry is one field of the event's entries hash:
//
//	state attempt position joined_at admitted_at pass_expires_at reservation challenge
//
// with times in µs, 0 where not set, and the reservation's number (not its
// id) once the pass was used.

var _ ticketrush.Queues = (*Store)(nil)

// JoinQueue joins reqs to the event's queue in one call of join.lua (group
// commit: a batch of a thousand joins is one round trip and one script).
func (s *Store) JoinQueue(ctx context.Context, eventID int64, reqs []ticketrush.JoinRequest) ([]ticketrush.JoinResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	results := make([]ticketrush.JoinResult, len(reqs))
	var todo []int
	var visitors []string
	args := []any{s.clockArg(), 0}
	for i, r := range reqs {
		v, err := ticketrush.ParseVisitorToken(r.Visitor)
		if err != nil {
			results[i].Err = err
			continue
		}
		todo = append(todo, i)
		visitors = append(visitors, v)
		args = append(args, v, r.Challenge)
	}
	if len(todo) == 0 {
		return results, nil
	}
	if eventID < 1 || eventID > maxEvent {
		for _, i := range todo {
			results[i].Err = errEventNotFound()
		}
		return results, nil
	}
	args[1] = len(todo)
	ctx = writing(ctx)
	answers, err := joinScript.Run(ctx, s.rdb, s.eventKeys(eventID, s.newRun(ctx), 0), args...).StringSlice()
	if err != nil {
		return nil, s.failWrite(ctx, err)
	}
	if len(answers) != len(todo) {
		return nil, fmt.Errorf("redis: join script answered %d of %d requests", len(answers), len(todo))
	}
	for j, a := range answers {
		i := todo[j]
		if strings.HasPrefix(a, "!") {
			results[i].Err = outcome(a)
			continue
		}
		created := strings.HasPrefix(a, "+ ")
		e, err := parseEntry(eventID, visitors[j], "", a[2:])
		if err != nil {
			return nil, err
		}
		results[i] = ticketrush.JoinResult{Entry: e, Created: created}
	}
	return results, nil
}

// QueueEntry reads the visitor's entry in one read-only script, which
// works out its state as of now (a pass run out, a hold ended).
func (s *Store) QueueEntry(ctx context.Context, eventID int64, visitor string) (*ticketrush.QueueEntry, error) {
	if eventID < 1 || eventID > maxEvent {
		return nil, errEventNotFound()
	}
	v := strings.ToLower(visitor)
	a, err := entryScript.Run(ctx, s.rdb, s.eventKeys(eventID, "", 0), s.clockArg(), v).Text()
	if err != nil {
		return nil, s.fail(err)
	}
	if strings.HasPrefix(a, "!") {
		return nil, outcome(a)
	}
	state, rec, _ := strings.Cut(a, " ")
	return parseEntry(eventID, v, state, rec)
}

// QueueStats reads the queue's counters in one read-only script.
func (s *Store) QueueStats(ctx context.Context, eventID int64) (*ticketrush.QueueStats, error) {
	if eventID < 1 || eventID > maxEvent {
		return nil, errEventNotFound()
	}
	out, err := queueStatsScript.Run(ctx, s.rdb, s.eventKeys(eventID, "", 0), s.clockArg()).Slice()
	if err != nil {
		return nil, s.fail(err)
	}
	if len(out) == 1 {
		if code, ok := out[0].(string); ok {
			return nil, outcome(code)
		}
	}
	n, err := ints(out, 10)
	if err != nil {
		return nil, err
	}
	return &ticketrush.QueueStats{EventID: eventID, Prequeue: n[0], Waiting: n[1], Serving: n[2],
		Tail: n[3], Shuffled: n[4] == 1, Admitted: n[5], AdmittedLastMinute: n[6], Active: n[7],
		Available: n[8], Held: n[9]}, nil
}

// shuffleSlack widens AdvanceQueue's look at the sale start, which compares
// it with one reading of the clock while the script reads its own.
const shuffleSlack = 2 * time.Second

// AdvanceQueue does one bounded step of the queue in one call of
// advance.lua; every process may call it at any time, since Redis runs one
// script at a time and each step reads the state the last one left.
//
// The shuffle's keys are drawn here, from crypto/rand, at the time of the
// call, and passed to the script: Lua's math.random is not a cryptographic
// source (a bot that learns its state could predict the order), and Redis
// before 7 seeded it the same way for every script call. The script gives each pre-queue
// entry one key, then positions in key order. Keys are drawn only when the
// pre-queue waits for its shuffle, at most ticketrush.QueueChunk a call.
func (s *Store) AdvanceQueue(ctx context.Context, eventID int64) (*ticketrush.QueueAdvance, error) {
	if eventID < 1 || eventID > maxEvent {
		return nil, errEventNotFound()
	}
	keys := s.eventKeys(eventID, s.newRun(ctx), 0)
	var sale, closed *goredis.StringCmd
	var pre *goredis.IntCmd
	var now *goredis.TimeCmd
	_, err := s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		sale = p.HGet(ctx, keys[0], "sale_starts_at")
		closed = p.HGet(ctx, keys[5], "closed")
		pre = p.LLen(ctx, keys[6])
		if s.now == nil {
			now = p.Time(ctx)
		}
		return nil
	})
	if err != nil && !errors.Is(err, goredis.Nil) {
		return nil, s.fail(err)
	}
	args := []any{s.clockArg()}
	if n := min(pre.Val(), ticketrush.QueueChunk); n > 0 {
		started := closed.Val() == "1" || sale.Val() == ""
		if !started {
			t := time.Now()
			if s.now != nil {
				t = s.now()
			} else if now.Err() == nil {
				t = now.Val()
			}
			at, err := strconv.ParseInt(sale.Val(), 10, 64)
			started = err == nil && !t.Add(shuffleSlack).Before(micros(at))
		}
		if started {
			var b [8]byte
			for range n {
				rand.Read(b[:])
				args = append(args, binary.BigEndian.Uint64(b[:])>>11)
			}
		}
	}
	ctx = writing(ctx)
	out, err := advanceScript.Run(ctx, s.rdb, keys, args...).Slice()
	if err != nil {
		return nil, s.failWrite(ctx, err)
	}
	if len(out) == 1 {
		if code, ok := out[0].(string); ok {
			return nil, outcome(code)
		}
	}
	n, err := ints(out, 4)
	if err != nil {
		return nil, err
	}
	return &ticketrush.QueueAdvance{Shuffled: int(n[0]), Admitted: int(n[1]), Expired: int(n[2]), More: n[3] == 1}, nil
}

// ints reads a script's list of n integers.
func ints(out []any, n int) ([]int64, error) {
	if len(out) != n {
		return nil, fmt.Errorf("redis: script answered %d values, want %d", len(out), n)
	}
	v := make([]int64, n)
	for i, x := range out {
		k, ok := x.(int64)
		if !ok {
			return nil, fmt.Errorf("redis: script answered %v", out)
		}
		v[i] = k
	}
	return v, nil
}

// parseEntry decodes an entry record; state, when not "", overrides the
// stored one (the state as of now).
func parseEntry(eventID int64, visitor, state, rec string) (*ticketrush.QueueEntry, error) {
	f := strings.SplitN(rec, " ", 8)
	if len(f) != 8 {
		return nil, fmt.Errorf("redis: bad queue entry %q", rec)
	}
	var n [6]int64
	for i := range n {
		v, err := strconv.ParseInt(f[i+1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("redis: bad queue entry %q", rec)
		}
		n[i] = v
	}
	if state == "" {
		state = f[0]
	}
	e := &ticketrush.QueueEntry{EventID: eventID, Visitor: visitor, Attempt: n[0], State: state,
		Position: n[1], JoinedAt: micros(n[2])}
	if n[3] != 0 {
		a, x := micros(n[3]), micros(n[4])
		e.AdmittedAt, e.PassExpiresAt = &a, &x
	}
	if n[5] != 0 {
		e.ReservationID = reservationID(eventID, n[5])
	}
	return e, nil
}
