-- Event settings and the waiting room.
--
-- max_per_order caps one reserve; 10 is the default, a deliberate change
-- from the original, which let one request take a whole event. hidden
-- leaves an event out of the public listing; sale_closed stops reserves.
-- waiting_room holds the room's settings as a JSON object with the API's
-- field names (NULL: no waiting room), so a read of the row shows them.

-- +goose Up
ALTER TABLE events
    ADD COLUMN max_per_order bigint  NOT NULL DEFAULT 10,
    ADD COLUMN hidden        boolean NOT NULL DEFAULT false,
    ADD COLUMN sale_closed   boolean NOT NULL DEFAULT false,
    ADD COLUMN waiting_room  jsonb,
    ADD CONSTRAINT events_max_per_order_range CHECK (max_per_order BETWEEN 1 AND 10000),
    ADD CONSTRAINT events_waiting_room_object
        CHECK (waiting_room IS NULL OR jsonb_typeof(waiting_room) = 'object');

-- One row per event with a waiting room. Every step that changes the queue
-- (a batch of joins, an advance) locks this row first, so each step happens
-- once however many processes take it.
--
-- prequeue_closed: the sale has started and the pre-queue took its last
-- entry; prequeue_size is then its size P, and positions 1…P belong to it.
-- tail is the highest position given (P once closed), serving the highest
-- admitted, admitted the admissions ever, last_admitted_at the newest stamp.
CREATE TABLE queues (
    event_id         bigint      PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    prequeue_closed  boolean     NOT NULL DEFAULT false,
    prequeue_size    bigint      NOT NULL DEFAULT 0,
    tail             bigint      NOT NULL DEFAULT 0,
    serving          bigint      NOT NULL DEFAULT 0,
    admitted         bigint      NOT NULL DEFAULT 0,
    last_admitted_at timestamptz
);

-- Every event has its queue row, whether or not it has a room yet.
INSERT INTO queues (event_id) SELECT id FROM events;

-- A visitor's places in an event's queue, one row per attempt. The stored
-- state is prequeue, waiting, admitted or expired; an admitted entry whose
-- pass or hold has run out reads as expired before an advance marks it.
-- shuffle_key is drawn from a cryptographic source when the pre-queue is
-- shuffled; challenge is the proof the join was verified with.
CREATE TABLE queue_entries (
    id              bigserial   PRIMARY KEY,
    event_id        bigint      NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    visitor         text        NOT NULL,
    attempt         bigint      NOT NULL,
    state           text        NOT NULL,
    position        bigint,
    shuffle_key     bigint,
    challenge       text        NOT NULL DEFAULT '',
    joined_at       timestamptz NOT NULL,
    admitted_at     timestamptz,
    pass_expires_at timestamptz,
    reservation_id  bigint,
    CONSTRAINT queue_entries_state_valid
        CHECK (state IN ('prequeue', 'waiting', 'admitted', 'expired')),
    CONSTRAINT queue_entries_attempt_positive CHECK (attempt > 0),
    CONSTRAINT queue_entries_position_positive CHECK (position IS NULL OR position > 0)
);

-- A visitor's latest attempt, and one entry per attempt.
CREATE UNIQUE INDEX queue_entries_event_visitor_attempt_idx
    ON queue_entries (event_id, visitor, attempt DESC);

-- Positions are unique within an event.
CREATE UNIQUE INDEX queue_entries_event_position_idx
    ON queue_entries (event_id, position) WHERE position IS NOT NULL;

-- The next entries to admit, in position order.
CREATE INDEX queue_entries_waiting_idx
    ON queue_entries (event_id, position) WHERE state = 'waiting';

-- The pre-queue, for the shuffle.
CREATE INDEX queue_entries_prequeue_idx
    ON queue_entries (event_id, shuffle_key, id) WHERE state = 'prequeue';

-- Admitted entries, for expiry and the active count.
CREATE INDEX queue_entries_admitted_idx
    ON queue_entries (event_id, pass_expires_at) WHERE state = 'admitted';

-- The sliding window: admissions stamped in the last 60 s.
CREATE INDEX queue_entries_admitted_at_idx
    ON queue_entries (event_id, admitted_at) WHERE admitted_at IS NOT NULL;

-- +goose Down
DROP TABLE queue_entries;
DROP TABLE queues;
ALTER TABLE events
    DROP CONSTRAINT events_waiting_room_object,
    DROP CONSTRAINT events_max_per_order_range,
    DROP COLUMN waiting_room,
    DROP COLUMN sale_closed,
    DROP COLUMN hidden,
    DROP COLUMN max_per_order;
