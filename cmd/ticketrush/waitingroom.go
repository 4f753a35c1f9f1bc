package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/httpapi"
)

// defaultQueueInterval is how often a node advances every waiting room:
// often enough that admissions come in small, even steps.
const defaultQueueInterval = 250 * time.Millisecond

// checkWaitingRoom checks the waiting-room flags.
func (c serveConfig) checkWaitingRoom() error {
	if c.joinRate < 0 || c.joinBurst < 0 {
		return fmt.Errorf("--join-rate %g, --join-burst %d: must not be negative", c.joinRate, c.joinBurst)
	}
	if c.queueInterval < 0 || c.queueInterval > 5*time.Second {
		return fmt.Errorf("--queue-interval %s: want a duration from 1ms to 5s, e.g. 250ms", c.queueInterval)
	}
	if c.passKeys != "" {
		if _, err := httpapi.ParsePassKeys(c.passKeys); err != nil {
			return fmt.Errorf("--pass-keys: %w", err)
		}
	}
	return nil
}

// passKeysFor returns the keys of --pass-keys. Unset, it derives one from
// the admin token, which every node of a deployment shares already, so
// passes verify on every node; with no admin token either, a key of this
// process only. Both are worth a warning: a production deployment names
// its keys so it can rotate them. The keys themselves are never logged.
func passKeysFor(c serveConfig, log *slog.Logger) ([]httpapi.PassKey, error) {
	if c.passKeys != "" {
		keys, err := httpapi.ParsePassKeys(c.passKeys)
		if err != nil {
			return nil, fmt.Errorf("--pass-keys: %w", err)
		}
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.ID
		}
		log.Info("admission pass keys", "signing", ids[0], "verifying", ids)
		return keys, nil
	}
	if c.adminToken != "" {
		log.Warn("no --pass-keys set: admission passes are signed with a key derived from the admin token; set --pass-keys (TICKETRUSH_PASS_KEYS) to rotate keys without changing the admin token")
		return []httpapi.PassKey{httpapi.DerivedPassKey(c.adminToken)}, nil
	}
	log.Warn("no --pass-keys and no admin token set: admission passes are signed with a random key of this process and verify on no other node; set --pass-keys (TICKETRUSH_PASS_KEYS) on every node")
	return []httpapi.PassKey{httpapi.RandomPassKey()}, nil
}

// keepQueues advances every waiting room until ctx ends, when the store
// has waiting rooms.
func keepQueues(ctx context.Context, s ticketrush.Store, interval time.Duration, log *slog.Logger, advanced func(int64, *ticketrush.QueueAdvance)) {
	if interval <= 0 {
		interval = defaultQueueInterval
	}
	qs, ok := s.(ticketrush.QueueStore)
	if !ok {
		log.Warn("this backend has no waiting room: queue endpoints answer 500")
		return
	}
	ticketrush.KeepQueues(ctx, qs, interval, log, advanced)
}
