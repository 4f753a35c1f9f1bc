-- A batch that reserves for many events at once touched, per event, the last
-- page of two indexes keyed by event: reservations_reserved_event_expires_at
-- and reservations_event. Each such page is 4 KiB more written to the WAL
-- before the commit, so a transaction over fifty events wrote a hundred
-- pages where one over a single event wrote a few.
--
-- A new hold is in the first of those indexes already (status reserved), so
-- the event's index only needs the rows that have left that status: a
-- reserve no longer writes to it, a purchase, cancel or expiry does (once,
-- when the row leaves status reserved). Together the two partial indexes
-- still cover every row of an event, for its stats and for refusing to
-- delete an event that has reservations.

-- +goose Up
CREATE INDEX reservations_settled_event ON reservations (event_id) WHERE status <> 'reserved';
DROP INDEX reservations_event;

-- +goose Down
CREATE INDEX reservations_event ON reservations (event_id);
DROP INDEX reservations_settled_event;
