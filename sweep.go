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

// QueueStore is what KeepQueues needs: the events, to find those with a
// waiting room, and the queue operations.
type QueueStore interface {
	Events(ctx context.Context) ([]*Event, error)
	Queues
}

// KeepQueues advances the queue of every event with a waiting room every
// interval until ctx ends. Every node runs it; the backend makes each step
// happen once however many nodes call, so a node that dies takes nothing
// with it. advanced, when not nil, is told each call's outcome.
func KeepQueues(ctx context.Context, s QueueStore, interval time.Duration, log *slog.Logger, advanced func(eventID int64, a *QueueAdvance)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		events, err := s.Events(lctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("queue keeper: listing events failed", "err", err)
			}
			continue
		}
		for _, e := range events {
			if e.WaitingRoom == nil {
				continue
			}
			// A step is bounded (QueueChunk); go on at once while it says
			// there is more, e.g. a large pre-queue being shuffled.
			for ctx.Err() == nil {
				actx, cancel := context.WithTimeout(ctx, 5*time.Second)
				a, err := s.AdvanceQueue(actx, e.ID)
				cancel()
				if err != nil {
					if ctx.Err() == nil && ErrorCode(err) != EWaitingRoomNotFound && ErrorCode(err) != EEventNotFound {
						log.Warn("queue keeper: advance failed", "event", e.ID, "err", err)
					}
					break
				}
				if advanced != nil {
					advanced(e.ID, a)
				}
				if !a.More {
					break
				}
			}
		}
	}
}
