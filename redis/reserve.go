package redis

import (
	"context"
	"fmt"
	"strings"
	"sync"

	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketrush/ticketrush"
)

// Reserve is the per-request strategy: one script call per request, which
// reads the event, releases its expired holds if stock is short, checks and
// writes, atomically. It is the Redis counterpart of the original's
// transaction on a locked event row, and the baseline ReserveBatch is
// measured against. When the stock is short by more expired holds than one
// call may release (releaseChunk), the script releases a chunk and asks to
// be called again, so no call blocks Redis for long.
func (s *Store) Reserve(ctx context.Context, r ticketrush.ReserveRequest) (*ticketrush.Reservation, error) {
	r, err := normalize(r)
	if err != nil {
		return nil, err
	}
	if r.EventID > maxEvent {
		return nil, errEventNotFound()
	}
	reqs := []ticketrush.ReserveRequest{r}
	cl, err := s.claim(ctx, r.EventID, reqs)
	if err != nil {
		return nil, err
	}
	ctx = writing(ctx)
	for {
		keys := append(s.eventKeys(r.EventID, s.newRun(ctx), 1), s.idemKeyFor(r))
		answer, err := reserveScript.Run(ctx, s.rdb, keys, s.clockArg(), r.EventID, r.Amount,
			r.VisitorToken, r.IdempotencyKey, s.idemField(r.VisitorToken, r.IdempotencyKey),
			cl.conflictArg(0), r.Admission).Text()
		if err != nil {
			// The script may have run: the claim stays, as the key may now
			// have a reservation.
			return nil, s.failWrite(ctx, err)
		}
		if answer == "!more" {
			continue
		}
		if strings.HasPrefix(answer, "!") {
			s.unclaim(ctx, r.EventID, reqs, cl, []bool{false})
			return nil, outcome(answer)
		}
		return parseNumbered(r.EventID, answer)
	}
}

// ReserveBatch is group commit: the whole batch is one call of
// reserve_batch.lua, which decides every request in order with the event's
// stock, visitor totals and idempotency keys as the earlier requests of the
// batch left them. Redis runs one script at a time, so the batch is atomic
// against every other script, from this process or another; with
// appendfsync always, its one AOF write is its one fsync.
//
// The exception is a batch that finds the stock short by more expired
// holds than one call may release (releaseChunk): the script stops at the
// request that needs more, having decided the ones before it, and the rest
// of the batch goes in another call, so no call blocks Redis for long. Each
// request is still decided once, in order; should a later call fail, the
// requests it carried get the error and the earlier ones their results.
func (s *Store) ReserveBatch(ctx context.Context, eventID int64, reqs []ticketrush.ReserveRequest) ([]ticketrush.ReserveResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	results := make([]ticketrush.ReserveResult, len(reqs))
	var todo []int // indexes of the requests the script decides
	var batch []ticketrush.ReserveRequest
	for i, r := range reqs {
		if r.EventID != eventID {
			results[i].Err = fmt.Errorf("redis: request for event %d in a batch for event %d", r.EventID, eventID)
			continue
		}
		n, err := normalize(r)
		if err != nil {
			results[i].Err = err
			continue
		}
		todo = append(todo, i)
		batch = append(batch, n)
	}
	if len(batch) == 0 {
		return results, nil
	}
	if eventID < 1 || eventID > maxEvent {
		for _, i := range todo {
			results[i].Err = errEventNotFound()
		}
		return results, nil
	}

	cl, err := s.claim(ctx, eventID, batch)
	if err != nil {
		return nil, err
	}
	ctx = writing(ctx)
	granted := make([]bool, len(batch))
	for from := 0; from < len(batch); {
		part := batch[from:]
		keys := s.eventKeys(eventID, s.newRun(ctx), len(part))
		args := make([]any, 0, 3+6*len(part))
		args = append(args, s.clockArg(), eventID, len(part))
		for j, r := range part {
			keys = append(keys, s.idemKeyFor(r))
			args = append(args, r.Amount, r.VisitorToken, r.IdempotencyKey,
				s.idemField(r.VisitorToken, r.IdempotencyKey), cl.conflictArg(from+j), r.Admission)
		}
		answers, err := reserveBatchScript.Run(ctx, s.rdb, keys, args...).StringSlice()
		if err != nil {
			err = s.failWrite(ctx, err)
			if from == 0 {
				return nil, err
			}
			for j := from; j < len(batch); j++ {
				results[todo[j]].Err = err
			}
			break
		}
		if len(answers) == 0 || len(answers) > len(part) ||
			(len(answers) < len(part) && answers[len(answers)-1] != "!more") {
			return nil, fmt.Errorf("redis: batch script answered %d of %d requests", len(answers), len(part))
		}
		for j, answer := range answers {
			if answer == "!more" {
				break
			}
			i := todo[from+j]
			if strings.HasPrefix(answer, "!") {
				results[i].Err = outcome(answer)
				continue
			}
			res, err := parseNumbered(eventID, answer)
			if err != nil {
				return nil, err
			}
			results[i].Reservation = res
			granted[from+j] = true
		}
		from += len(answers)
		if answers[len(answers)-1] == "!more" {
			from--
		}
	}
	s.unclaim(ctx, eventID, batch, cl, granted)
	return results, nil
}

// ReserveBatches is group commit over several events. Each event is one
// atomic script as in ReserveBatch: events live in different hash slots (on
// a cluster, possibly on different primaries), so no one script could
// decide them together, and a Redis script is already its own transaction.
// The events' calls are sent at once, each on a connection of its own, so
// that the batch takes about one round trip rather than one per event. An
// event whose call fails has the error in each of its results; the other
// events' results stand.
func (s *Store) ReserveBatches(ctx context.Context, batches []ticketrush.EventBatch) ([][]ticketrush.ReserveResult, error) {
	if err := ticketrush.CheckBatches(batches); err != nil {
		return nil, err
	}
	out := make([][]ticketrush.ReserveResult, len(batches))
	one := func(i int) {
		b := batches[i]
		res, err := s.ReserveBatch(ctx, b.EventID, b.Reqs)
		if err != nil {
			res = make([]ticketrush.ReserveResult, len(b.Reqs))
			for j := range res {
				res[j].Err = err
			}
		}
		out[i] = res
	}
	if len(batches) == 1 {
		one(0)
		return out, nil
	}
	var wg sync.WaitGroup
	for i := range batches {
		wg.Go(func() { one(i) })
	}
	wg.Wait()
	return out, nil
}

// normalize validates a request and puts its visitor token in the stored
// (lower-case) form.
func normalize(r ticketrush.ReserveRequest) (ticketrush.ReserveRequest, error) {
	if err := r.Validate(); err != nil {
		return r, err
	}
	r.VisitorToken = strings.ToLower(r.VisitorToken)
	return r, nil
}

// idemKeyFor is the key a request's Idempotency-Key record lives under. A
// request without a key still names a key of its event's slot, which the
// script never reads, so that every KEYS entry is routable on a cluster.
func (s *Store) idemKeyFor(r ticketrush.ReserveRequest) string {
	if r.IdempotencyKey == "" {
		return s.eventBase(r.EventID)
	}
	return s.idemKey(r.EventID, r.VisitorToken)
}

// Idempotency keys on Redis Cluster.
//
// An Idempotency-Key belongs to the visitor across events: the same key sent
// for another event must be refused. On a single Redis the key's record lives
// with the visitor and the reserve script reads and writes it atomically with
// the event. On a cluster the visitor's keys and the event's keys live in
// different slots, possibly on different primaries, and no script can change
// both. There, the record that answers repeats lives with the event (atomic
// with the reservation), and before the script a claim under the visitor
// binds the key to the event with HSETNX: a key claimed for another event is
// refused. A claim made for a request that is then refused is dropped again,
// because a refused reserve stores nothing.
//
// What this gives up, on a cluster only: if the process dies between the
// claim and the script, or the script's reply is lost, the claim stays while
// no reservation may exist, so the key can no longer be used for another
// event (retrying it on the same event works). Two concurrent requests with
// one key, where one is refused and drops the claim while the other, for the
// same event, succeeds, can leave the reservation without a claim, so a third
// request with that key for another event would then be accepted. Stock and
// limits are never affected: each event's decision stays atomic.

// claims is what claim found for each request of a batch.
type claims struct {
	state []int64 // per request: 1 claimed now, 0 claimed before, -1 conflict
	fresh []bool  // per request: it made the claim (the first of its key)
}

func (c claims) conflictArg(j int) string {
	if c.state != nil && c.state[j] < 0 {
		return "1"
	}
	return ""
}

// claim binds the batch's Idempotency-Keys to eventID (cluster only), one
// pipelined script per distinct visitor and key.
func (s *Store) claim(ctx context.Context, eventID int64, batch []ticketrush.ReserveRequest) (claims, error) {
	var c claims
	if !s.cluster {
		return c, nil
	}
	first := map[[2]string]int{}
	var calls []call
	var callOf []int
	for _, r := range batch {
		if r.IdempotencyKey == "" {
			callOf = append(callOf, -1)
			continue
		}
		k := [2]string{r.VisitorToken, r.IdempotencyKey}
		if n, ok := first[k]; ok {
			callOf = append(callOf, n)
			continue
		}
		first[k] = len(calls)
		callOf = append(callOf, len(calls))
		calls = append(calls, call{keys: []string{s.claimKey(r.VisitorToken)},
			args: []any{r.IdempotencyKey, eventID, runID()}})
	}
	if len(calls) == 0 {
		return c, nil
	}
	out, err := s.runAll(ctx, claimScript, calls)
	if err != nil {
		return c, err
	}
	c.state = make([]int64, len(batch))
	c.fresh = make([]bool, len(batch))
	seen := make([]bool, len(calls))
	for j, n := range callOf {
		if n < 0 {
			continue
		}
		v, _ := out[n].(int64)
		c.state[j] = v
		if v == 1 && !seen[n] {
			c.fresh[j] = true
		} else if v == 1 {
			c.state[j] = 0
		}
		seen[n] = true
	}
	return c, nil
}

// unclaim drops the claims this batch made for keys none of its requests
// got a reservation with. It is best effort: a claim left behind only keeps
// the key from being used for another event.
func (s *Store) unclaim(ctx context.Context, eventID int64, batch []ticketrush.ReserveRequest, c claims, granted []bool) {
	if c.fresh == nil {
		return
	}
	used := map[[2]string]bool{}
	for j, r := range batch {
		if granted[j] && r.IdempotencyKey != "" {
			used[[2]string{r.VisitorToken, r.IdempotencyKey}] = true
		}
	}
	var calls []call
	for j, r := range batch {
		if c.fresh[j] && !used[[2]string{r.VisitorToken, r.IdempotencyKey}] {
			calls = append(calls, call{keys: []string{s.claimKey(r.VisitorToken)},
				args: []any{r.IdempotencyKey, eventID}})
		}
	}
	if len(calls) > 0 {
		s.runAll(ctx, unclaimScript, calls)
	}
}

// call is one script invocation in runAll.
type call struct {
	keys []string
	args []any
}

// runAll runs a script once per call in one pipeline (one round trip per
// shard) and returns the replies in order. A node that does not have the
// script cached yet gets it by EVAL for that call.
func (s *Store) runAll(ctx context.Context, sc *goredis.Script, calls []call) ([]any, error) {
	cmds := make([]*goredis.Cmd, len(calls))
	_, _ = s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, c := range calls {
			cmds[i] = sc.EvalSha(ctx, p, c.keys, c.args...)
		}
		return nil
	})
	out := make([]any, len(calls))
	for i, cmd := range cmds {
		v, err := cmd.Result()
		if goredis.HasErrorPrefix(err, "NOSCRIPT") {
			v, err = sc.Run(ctx, s.rdb, calls[i].keys, calls[i].args...).Result()
		}
		if err != nil {
			return nil, s.fail(err)
		}
		out[i] = v
	}
	return out, nil
}
