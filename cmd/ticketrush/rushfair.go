package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ticketrush/ticketrush/rush"
)

// fairFlags are the flags of the fairness rehearsal, which `rush` runs
// instead of the classic one when --humans or --bots is given.
type fairFlags struct {
	cfg     rush.FairConfig
	compare bool
}

func (f *fairFlags) register(fs *flag.FlagSet) {
	c := &f.cfg
	fs.IntVar(&c.Humans, "humans", 2000, "fairness rehearsal: people who arrive over --window, join the queue once, poll as Retry-After says and reserve --human-amount when let in")
	fs.IntVar(&c.Bots, "bots", 20, "fairness rehearsal: scripts that loop with fresh visitor tokens, solve challenges as fast as Go can, poll every --bot-poll and take max_per_order")
	fs.Int64Var(&c.Tickets, "tickets", 400, "fairness rehearsal: tickets of each created event")
	fs.Int64Var(&c.HumanAmount, "human-amount", 2, "fairness rehearsal: tickets a human reserves")
	fs.DurationVar(&c.Window, "window", 20*time.Second, "fairness rehearsal: humans arrive uniformly over this time, e.g. 20s")
	fs.DurationVar(&c.SaleAfter, "sale-after", 5*time.Second, "fairness rehearsal: the sale starts this long after each phase starts (earlier arrivals join the pre-queue), e.g. 5s")
	fs.Int64Var(&c.AdmitPerMinute, "admit-per-minute", 600, "fairness rehearsal: the waiting room's admission rate")
	fs.Int64Var(&c.PassSeconds, "pass-seconds", 60, "fairness rehearsal: how long an admission pass lasts")
	fs.Int64Var(&c.ChallengeBits, "challenge-bits", 8, "fairness rehearsal: proof-of-work difficulty of a join (0 to 24)")
	fs.Int64Var(&c.MaxActive, "max-active", 0, "fairness rehearsal: the waiting room's cap on active visitors (0: none)")
	fs.DurationVar(&c.HumanPoll, "human-poll", 3*time.Second, "fairness rehearsal: a human's poll interval when the server names none, e.g. 3s")
	fs.DurationVar(&c.BotPoll, "bot-poll", 20*time.Millisecond, "fairness rehearsal: a bot's poll interval, e.g. 20ms (50 Hz)")
	fs.DurationVar(&c.PhaseTimeout, "phase-timeout", 3*time.Minute, "fairness rehearsal: the longest a phase may run, e.g. 3m")
	fs.BoolVar(&f.compare, "compare", true, "fairness rehearsal: also run the same crowd on an event without a waiting room")
}

// requested reports whether the command line asked for a fairness
// rehearsal.
func (f *fairFlags) requested(fs *flag.FlagSet) bool {
	set := false
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "humans" || fl.Name == "bots" {
			set = true
		}
	})
	return set
}

func runFair(ctx context.Context, f *fairFlags, urls []string, token string, timeout time.Duration, seed uint64, asJSON bool, stdout, stderr io.Writer) error {
	cfg := f.cfg
	cfg.URLs, cfg.AdminToken, cfg.Timeout, cfg.Seed = urls, token, timeout, seed
	cfg.SkipNoRoom = !f.compare
	phases := 1
	if f.compare {
		phases = 2
	}
	fmt.Fprintf(stderr, "rush: fairness rehearsal, %d phase(s) of about %s each (arrivals over %s, then until every human is done, at most %s)\n",
		phases, cfg.Window.Round(time.Second), cfg.Window, cfg.PhaseTimeout)
	rep, err := rush.RunFair(ctx, cfg)
	if err != nil {
		return fmt.Errorf("rush: %w", err)
	}
	if asJSON {
		b, err := rep.JSON()
		if err != nil {
			return err
		}
		if _, err := stdout.Write(append(b, '\n')); err != nil {
			return err
		}
	} else if err := rep.WriteText(stdout); err != nil {
		return err
	}
	var failed []string
	for _, c := range rep.Checks {
		if c.Result == rush.Fail {
			failed = append(failed, c.Name)
		}
	}
	if len(failed) > 0 {
		return exitError{code: 1, msg: "rush: fairness checks failed: " + strings.Join(failed, "; ")}
	}
	return nil
}
