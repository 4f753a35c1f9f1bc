package redis_test

import (
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/storetest"
)

// TestMiniredis runs the conformance suite on an in-process miniredis, which
// interprets the same scripts with its own Lua, so the scripts are checked
// even where no redis-server runs. It is a fast check, not the proof:
// TestConformance and TestCluster run against real servers.
func TestMiniredis(t *testing.T) {
	m := miniredis.RunT(t)
	url := "redis://" + m.Addr() + "/0"
	storetest.Run(t, func(t *testing.T, clock ticketrush.Clock) func() ticketrush.Store {
		prefix := uniquePrefix()
		s := open(t, url, prefix, clock)
		if err := s.Migrate(t.Context()); err != nil {
			t.Fatalf("Migrate: %v", err)
		}
		s.Close()
		return func() ticketrush.Store { return open(t, url, prefix, clock) }
	})
}
