package postgres_test

import (
	"context"
	"testing"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/postgres"
	"github.com/ticketrush/ticketrush/storetest"
)

// TestStore runs the conformance suite, each case on a database of its own.
func TestStore(t *testing.T) {
	t.Parallel()
	storetest.Run(t, newStore)
}

func newStore(t *testing.T, clock ticketrush.Clock) func() ticketrush.Store {
	url := postgres.NewTestDatabase(t)
	return func() ticketrush.Store {
		s, err := postgres.Open(context.Background(), url, postgres.Options{Now: clock})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}
