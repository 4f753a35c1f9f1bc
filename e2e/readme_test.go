package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The README's API examples are a session a new user copies into a shell.
// TestREADME runs them in order, in one bash process, against a real serve
// on every backend, and checks each curl's status against the one the README
// states beside it.
//
// The README's conventions, which this test enforces:
//   - the examples are the ```sh blocks of the "## API" section;
//   - every command that runs curl is followed (before the next command) by
//     a comment line that starts with its status: "# 201 …" or "# → 201 …";
//   - shell variables carry tokens and ids from one step to the next;
//   - the server is http://localhost:8080, started with --admin-token s3cret.

// readmeStep is one command of the README and the status it promises.
type readmeStep struct {
	line    int // of the README, for messages
	command string
	status  int // 0: no curl, no status to check
}

var statusComment = regexp.MustCompile(`^#\s*(?:→\s*)?([1-5][0-9][0-9])\b`)

// readmeSteps extracts the examples of the README's API section.
func readmeSteps(t *testing.T) []readmeStep {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		steps   []readmeStep
		inAPI   bool
		inBlock bool
		cur     *readmeStep
		cont    bool
	)
	flush := func() {
		if cur != nil {
			steps = append(steps, *cur)
			cur = nil
		}
	}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			inAPI = line == "## API"
			continue
		case !inAPI:
			continue
		case strings.HasPrefix(line, "```"):
			if !inBlock && strings.TrimPrefix(line, "```") != "sh" {
				inBlock = false
				continue
			}
			inBlock = !inBlock
			flush()
			continue
		case !inBlock:
			continue
		}
		trimmed := strings.TrimSpace(line)
		switch {
		case cont:
			cur.command += "\n" + line
		case trimmed == "":
			continue
		case strings.HasPrefix(trimmed, "#"):
			if m := statusComment.FindStringSubmatch(trimmed); m != nil && cur != nil && cur.status == 0 && strings.Contains(cur.command, "curl") {
				cur.status, _ = strconv.Atoi(m[1])
				flush()
			}
			continue
		default:
			flush()
			cur = &readmeStep{line: n, command: line}
		}
		cont = strings.HasSuffix(trimmed, `\`)
	}
	flush()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(steps) == 0 {
		t.Fatal("the README's API section has no ```sh examples")
	}
	for _, s := range steps {
		if strings.Contains(s.command, "curl") && s.status == 0 {
			t.Errorf("README line %d: a curl example without its status (a comment line \"# 201 …\" after it):\n%s", s.line, s.command)
		}
	}
	return steps
}

func TestREADME(t *testing.T) {
	if _, err := exec.LookPath("jq"); err != nil {
		t.Fatal("the README's examples use jq; install it (scripts/test does)")
	}
	steps := readmeSteps(t)
	if t.Failed() {
		return
	}
	for _, b := range []backend{sqliteBackend, postgresBackend, redisBackend} {
		t.Run(b.name, func(t *testing.T) {
			db, _ := b.newDB(t)
			p := startServe(t, db, "--admin-token", "s3cret")
			runREADME(t, p.URL, steps)
		})
	}
}

// runREADME runs the steps in one bash process against base, with curl
// wrapped so that each call's status is recorded beside its output.
func runREADME(t *testing.T, base string, steps []readmeStep) {
	dir := t.TempDir()
	var sc strings.Builder
	fmt.Fprintf(&sc, "set -u\ncd %q\n", dir)
	// The wrapper passes everything through and only adds the status,
	// written to a file because a step may run curl in a subshell.
	sc.WriteString(`curl() {
  local out rc
  out=$(mktemp)
  command curl -sS -o "$out" -w '%{http_code}' "$@" > last_status
  rc=$?
  cat "$out"; rm -f "$out"
  return $rc
}
`)
	for i, s := range steps {
		cmd := strings.ReplaceAll(s.command, "http://localhost:8080", base)
		fmt.Fprintf(&sc, "echo '@@step %d begin'\nrm -f last_status\n%s\necho\necho \"@@step %d end $(cat last_status 2>/dev/null || echo none)\"\n", i, cmd, i)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", sc.String())
	cmd.Env = cleanEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("bash: %v", err)
	}
	got := map[int]string{}
	outputs := map[int]string{}
	cur := -1
	var buf strings.Builder
	for _, line := range strings.Split(string(out), "\n") {
		var i int
		var status string
		switch {
		case strings.HasPrefix(line, "@@step ") && strings.HasSuffix(line, " begin"):
			fmt.Sscanf(line, "@@step %d begin", &i)
			cur = i
			buf.Reset()
		case strings.HasPrefix(line, "@@step "):
			fmt.Sscanf(line, "@@step %d end %s", &i, &status)
			got[i] = status
			outputs[i] = strings.TrimSpace(buf.String())
		default:
			if cur >= 0 {
				buf.WriteString(line + "\n")
			}
		}
	}
	for i, s := range steps {
		st, ran := got[i]
		switch {
		case !ran:
			t.Errorf("README line %d did not run:\n%s", s.line, s.command)
		case s.status != 0 && st != strconv.Itoa(s.status):
			t.Errorf("README line %d: status %s, the README says %d\n%s\noutput: %s", s.line, st, s.status, s.command, outputs[i])
		}
	}
	if t.Failed() {
		t.Logf("whole session output:\n%s", out)
	}
}
