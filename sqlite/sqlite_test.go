package sqlite_test

import (
	"path/filepath"
	"testing"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/sqlite"
	"github.com/ticketrush/ticketrush/storetest"
)

// TestConformance runs the suite every backend passes, each case on a fresh
// database file.
func TestConformance(t *testing.T) {
	storetest.Run(t, newStore)
}

// newStore creates and migrates a database file in the test's temporary
// directory and returns a function that opens stores on it.
func newStore(t *testing.T, clock ticketrush.Clock) func() ticketrush.Store {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ticketrush.db")
	s, err := sqlite.Open(t.Context(), path, sqlite.Options{Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return func() ticketrush.Store {
		s, err := sqlite.Open(t.Context(), path, sqlite.Options{Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}
