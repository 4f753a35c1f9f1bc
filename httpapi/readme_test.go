package httpapi

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestReadmeErrorTable holds the README's error table to the code->status
// table: every code the API can answer with is listed, each with its status.
func TestReadmeErrorTable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := readmeErrorRows(t, string(readme))
	code := regexp.MustCompile("`([a-z_]+)`")
	status := regexp.MustCompile(`^\d{3}\b`)
	listed := map[string]int{}
	for _, row := range rows {
		s := status.FindString(row[1])
		if s == "" {
			t.Errorf("row %q: status %q does not start with a status code", row[0], row[1])
			continue
		}
		n, _ := strconv.Atoi(s)
		// "`validation_failed` + `fields`": what follows a + is a detail.
		codes, _, _ := strings.Cut(row[2], " + ")
		for _, m := range code.FindAllStringSubmatch(codes, -1) {
			c := m[1]
			want, ok := statuses[c]
			switch {
			case !ok:
				t.Errorf("README lists %q, which httpapi does not know", c)
			case n != want:
				t.Errorf("README gives %q status %d, httpapi %d", c, n, want)
			}
			if prev, seen := listed[c]; seen && prev != n {
				t.Errorf("README gives %q two statuses, %d and %d", c, prev, n)
			}
			listed[c] = n
		}
	}
	for c, s := range statuses {
		if _, ok := listed[c]; !ok {
			t.Errorf("README's error table misses %q (%d)", c, s)
		}
	}
}

// readmeErrorRows returns the cells of the rows of the README table whose
// header is "| Case | Status | code |".
func readmeErrorRows(t *testing.T, readme string) [][3]string {
	lines := strings.Split(readme, "\n")
	start := -1
	for i, l := range lines {
		if strings.TrimSpace(l) == "| Case | Status | code |" {
			start = i + 2 // past the header and its |---| line
			break
		}
	}
	if start < 0 {
		t.Fatal(`README has no "| Case | Status | code |" table`)
	}
	var rows [][3]string
	for _, l := range lines[start:] {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "|") {
			break
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		if len(cells) != 3 {
			t.Fatalf("row %q has %d cells, want 3", l, len(cells))
		}
		rows = append(rows, [3]string{strings.TrimSpace(cells[0]), strings.TrimSpace(cells[1]), strings.TrimSpace(cells[2])})
	}
	if len(rows) == 0 {
		t.Fatal("README's error table is empty")
	}
	return rows
}
