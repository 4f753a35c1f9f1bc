-- The shared rate limit's state (package ratelimit): one row per client
-- address or visitor with its theoretical arrival time (GCRA), in
-- microseconds since the epoch of the database's clock. UNLOGGED: after a
-- crash every bucket simply starts full, and the hottest table of a rush
-- must not cost WAL. Rows whose tat has passed are the same as absent and
-- are pruned by the service.

-- +goose Up
CREATE UNLOGGED TABLE ratelimit (
    key text   PRIMARY KEY,
    tat bigint NOT NULL
);

-- +goose Down
DROP TABLE ratelimit;
