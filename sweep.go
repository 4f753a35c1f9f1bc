package ticketrush

import (
	"context"
	"log/slog"
	"time"
)

// SweepBatch is how many expired holds one ReleaseExpired call releases, so a
// sweep after a long pause never holds locks for long.
const SweepBatch = 500

// Sweep releases expired holds every interval until ctx ends. Reserves and
// purchases already treat an expired hold as released, so the sweep only
// keeps ticket_quantity and the stats current between requests.
// released, when not nil, is told how many holds each call released.
func Sweep(ctx context.Context, s Store, interval time.Duration, log *slog.Logger, released func(int)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for ctx.Err() == nil {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			n, err := s.ReleaseExpired(cctx, SweepBatch)
			cancel()
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("sweep failed", "err", err)
				}
				break
			}
			if n > 0 && released != nil {
				released(n)
			}
			if n < SweepBatch {
				break
			}
		}
	}
}
