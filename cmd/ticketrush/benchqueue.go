package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/ticketrush/ticketrush/bench"
)

// runQueueBench runs bench --queue: the waiting room's throughput and the
// crowd run, with the backends, client counts and durations of c.
func runQueueBench(ctx context.Context, c bench.Config, pool, crowd int, within time.Duration, asJSON bool, stdout, stderr io.Writer) error {
	switch {
	case pool < 1 || pool > 1_000_000:
		fmt.Fprintln(stderr, "--queue-pool: want 1 to 1000000 visitors")
		return errUsage
	case crowd < 0 || crowd > 10_000_000:
		fmt.Fprintln(stderr, "--crowd: want 0 (skip) to 10000000 visitors")
		return errUsage
	case within <= 0:
		fmt.Fprintln(stderr, "--crowd-within must be positive")
		return errUsage
	case c.Load == bench.LoadGo:
		fmt.Fprintln(stderr, "--queue needs wrk: every join is a fresh visitor and every poll a joined one (--load wrk or auto)")
		return errUsage
	}
	qc := bench.QueueConfig{Config: c, Pool: pool, Crowd: crowd, CrowdWithin: within}
	if crowd == 0 {
		qc.Crowd = -1
	}
	rep, err := bench.RunQueue(ctx, qc)
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.WriteMarkdown(stdout); err != nil {
		return err
	}
	if !rep.OK {
		return exitError{code: 1, msg: fmt.Sprintf("bench --queue: %d failed checks, %d missed targets (see the report)", len(rep.Problems), len(rep.Missed))}
	}
	return nil
}
