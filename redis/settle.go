package redis

import (
	"context"
	"fmt"
	"strings"

	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketrush/ticketrush"
)

// settleBatchScript is lua/settle_batch.lua.
var settleBatchScript = script("settle_batch")

// SettleBatch is group commit of purchases and cancels. A reservation id
// names its event (see doc.go), so the batch is split by event, and each
// event's part is one call of settle_batch.lua, which decides its requests
// in order atomically, as consecutive calls of purchase.lua and cancel.lua
// would. The parts go out together, in one pipeline (on a Cluster, one per
// primary, each part to its event's slot).
//
// Each part is atomic on its own, not the batch as a whole: should the call
// of one part fail, its requests get the error (EUnavailable, or
// EOutcomeUnknown when its reply was lost) and the other parts their
// results.
func (s *Store) SettleBatch(ctx context.Context, reqs []ticketrush.SettleRequest) ([]ticketrush.SettleResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	type part struct {
		eventID int64
		todo    []int // request indexes, in order
		args    []any
	}
	results := make([]ticketrush.SettleResult, len(reqs))
	byEvent := map[int64]*part{}
	var parts []*part
	for i, q := range reqs {
		eventID, n, ok := splitID(q.ID)
		if !ok {
			results[i].Err = errReservationNotFound()
			continue
		}
		p := byEvent[eventID]
		if p == nil {
			p = &part{eventID: eventID, args: []any{s.clockArg(), 0}}
			byEvent[eventID] = p
			parts = append(parts, p)
		}
		op := "p"
		if q.Cancel {
			op = "c"
		}
		p.todo = append(p.todo, i)
		p.args = append(p.args, op, n, strings.ToLower(q.Visitor))
	}
	if len(parts) == 0 {
		return results, nil
	}
	ctx = writing(ctx)
	keys := make([][]string, len(parts))
	for j, p := range parts {
		p.args[1] = len(p.todo)
		keys[j] = s.eventKeys(p.eventID, s.newRun(ctx), 0)
	}
	cmds := make([]*goredis.Cmd, len(parts))
	if len(parts) == 1 {
		cmds[0] = settleBatchScript.Run(ctx, s.rdb, keys[0], parts[0].args...)
	} else {
		// Errors are per command; a pipeline error is one of them.
		_, _ = s.rdb.Pipelined(ctx, func(pl goredis.Pipeliner) error {
			for j, p := range parts {
				cmds[j] = settleBatchScript.EvalSha(ctx, pl, keys[j], p.args...)
			}
			return nil
		})
		for j, p := range parts {
			if goredis.HasErrorPrefix(cmds[j].Err(), "NOSCRIPT") {
				// Not loaded yet (a restarted or flushed Redis): the
				// script did not run, so sending it again is safe.
				cmds[j] = settleBatchScript.Run(ctx, s.rdb, keys[j], p.args...)
			}
		}
	}
	for j, p := range parts {
		answers, err := cmds[j].StringSlice()
		if err == nil && len(answers) != len(p.todo) {
			err = fmt.Errorf("redis: settle batch answered %d of %d requests", len(answers), len(p.todo))
		}
		if err != nil {
			err = s.failWrite(ctx, err)
			if len(parts) == 1 && len(p.todo) == len(reqs) {
				return nil, err
			}
			for _, i := range p.todo {
				results[i].Err = err
			}
			continue
		}
		for k, i := range p.todo {
			a := answers[k]
			if strings.HasPrefix(a, "!") {
				results[i].Err = outcome(a)
				continue
			}
			results[i].Reservation, results[i].Err = parseNumbered(p.eventID, a)
		}
	}
	return results, nil
}
