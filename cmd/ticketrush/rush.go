package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/ticketrush/ticketrush/rush"
)

// urlList is a repeatable --url flag.
type urlList []string

func (u *urlList) String() string { return strings.Join(*u, ",") }

func (u *urlList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*u = append(*u, s)
		}
	}
	return nil
}

// amountList is the --amounts flag: ticket counts separated by commas.
type amountList []int64

func (a *amountList) String() string {
	s := make([]string, len(*a))
	for i, n := range *a {
		s[i] = strconv.FormatInt(n, 10)
	}
	return strings.Join(s, ",")
}

func (a *amountList) Set(v string) error {
	var out amountList
	for _, s := range strings.Split(v, ",") {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a positive ticket count", s)
		}
		out = append(out, n)
	}
	*a = out
	return nil
}

func runRush(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rush", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, `Usage: ticketrush rush --url URL [--url URL …] (--event ID | --create N) [flags]

Rehearses an on-sale against running servers. Each simulated visitor, with a
visitor token of its own, reserves a random amount, then purchases, cancels
or abandons the hold; --concurrency visitors are in flight at once, and
requests go round robin over every --url. Afterwards every acknowledged
reservation is read back and the servers' counts are checked: nothing
oversold, capacity == available + held + purchased, held + purchased ==
acknowledged − cancelled (holds that expired during the run counted from
the server's expired count), no 5xx, every node reports the same stock.

The verdict is PASS only when every check held. A check that could not be
run (the server's counts need --admin-token) makes it PARTIAL: the report
names each and why, and the exit status is 3 unless --partial-ok.

Exit status: 0 PASS; 1 a check failed (FAIL); 2 bad command line;
3 PARTIAL (nothing failed, something could not be verified).

With --humans or --bots it runs a fairness rehearsal instead: it creates a
hidden event with a waiting room (and, with --compare, one without) and
lets the humans and the bots compete for the tickets, then reports orders
won and tickets by group, each group's share of admissions and of orders,
whether place depends on join time or group (rank tests with p-values) and
the admission rate seen against the configured one.

Flags:
`)
		fs.PrintDefaults()
	}
	var urls urlList
	amounts := amountList(rush.DefaultAmounts)
	fs.Var(&urls, "url", "base URL of a server, e.g. http://127.0.0.1:8080; repeat (or separate with commas) for several nodes")
	event := fs.Int64("event", 0, "id of the event to sell")
	create := fs.Int64("create", 0, "create an event with this many tickets and sell it (needs the admin token); it is hidden from the public listing unless --listed")
	listed := fs.Bool("listed", false, "with --create: list the created event on the buyer page and in GET /api/events")
	hold := fs.Duration("hold", 0, "hold time of the created event (default: the server's)")
	visitors := fs.Int("visitors", 1000, "how many visitors come")
	concurrency := fs.Int("concurrency", 64, "how many visitors are in flight at once")
	fs.Var(&amounts, "amounts", "ticket counts a visitor picks from, uniformly")
	purchase := fs.Float64("purchase", 0.6, "probability that a visitor holding tickets buys them")
	cancel := fs.Float64("cancel", 0.1, "probability that a visitor holding tickets cancels; the others abandon the hold")
	token := fs.String("admin-token", getenv("TICKETRUSH_ADMIN_TOKEN"), "admin token, to create the event and read its stats; without it the checks on the server's counts cannot run and the verdict is PARTIAL (env TICKETRUSH_ADMIN_TOKEN)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	timeout := fs.Duration("timeout", 10*time.Second, "timeout of each request")
	retries := fs.Int("retries", 2, "times a visitor repeats a step that was shed (429/503 with Retry-After) or failed; 0 for none")
	seed := fs.Uint64("seed", 0, "seed of the visitors' choices (default: random)")
	partialOK := fs.Bool("partial-ok", false, "exit 0 when the verdict is PARTIAL (checks skipped, none failed) instead of 3")
	var fair fairFlags
	fair.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fair.requested(fs) {
		if len(urls) == 0 {
			fmt.Fprintln(stderr, "rush: --url is required")
			return errUsage
		}
		return runFair(ctx, &fair, urls, *token, *timeout, *seed, *asJSON, stdout, stderr)
	}
	switch {
	case len(urls) == 0:
		fmt.Fprintln(stderr, "rush: --url is required")
		return errUsage
	case (*event == 0) == (*create == 0):
		fmt.Fprintln(stderr, "rush: give either --event ID or --create N")
		return errUsage
	}
	if *retries == 0 {
		// The package reads 0 as its default.
		*retries = -1
	}

	cfg := rush.Config{
		URLs:        urls,
		EventID:     *event,
		Create:      *create,
		Listed:      *listed,
		Hold:        *hold,
		Visitors:    *visitors,
		Concurrency: *concurrency,
		Amounts:     amounts,
		Purchase:    *purchase,
		Cancel:      *cancel,
		AdminToken:  *token,
		Timeout:     *timeout,
		Retries:     *retries,
		Seed:        *seed,
		Progress:    stderr,
		Terminal:    isTerminal(stderr),
	}
	rep, err := rush.Run(ctx, cfg)
	if err != nil {
		return fmt.Errorf("rush: %w", err)
	}
	if *asJSON {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if _, err := stdout.Write(append(b, '\n')); err != nil {
			return err
		}
	} else if err := rep.WriteText(stdout); err != nil {
		return err
	}
	if failed := rep.Failed(); len(failed) > 0 {
		names := make([]string, len(failed))
		for i, c := range failed {
			names[i] = c.Name
		}
		return exitError{code: 1, msg: "rush: verification failed: " + strings.Join(names, "; ")}
	}
	if skipped := rep.Skipped(); len(skipped) > 0 && !*partialOK {
		names := make([]string, len(skipped))
		for i, c := range skipped {
			names[i] = c.Name
		}
		return exitError{code: exitPartial, msg: "rush: PARTIAL: not verified: " + strings.Join(names, "; ") +
			" (give --admin-token to verify them, or --partial-ok to accept a partial rehearsal)"}
	}
	return nil
}

// exitPartial is the exit status of a rehearsal that verified only part of
// what it checks: not a failure, but not a pass a script may rely on.
const exitPartial = 3

// isTerminal reports whether w is a terminal, where progress is a bar
// redrawn in place rather than a line every few seconds.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
