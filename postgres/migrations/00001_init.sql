-- The original's two tables, with their column names, plus what the
-- features need. ticket_quantity is the stock still on sale; the CHECKs make
-- overselling (or handing back more than was ever on sale) impossible even
-- if the code above had a bug.

-- +goose Up
CREATE TABLE events (
    id              bigserial   PRIMARY KEY,
    name            text        NOT NULL,
    ticket_quantity bigint      NOT NULL,
    capacity        bigint      NOT NULL,
    hold_seconds    bigint      NOT NULL,
    max_per_visitor bigint      NOT NULL DEFAULT 0,
    sale_starts_at  timestamptz,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT events_ticket_quantity_nonnegative CHECK (ticket_quantity >= 0),
    CONSTRAINT events_ticket_quantity_within_capacity CHECK (ticket_quantity <= capacity),
    CONSTRAINT events_hold_seconds_positive CHECK (hold_seconds > 0),
    CONSTRAINT events_max_per_visitor_nonnegative CHECK (max_per_visitor >= 0)
);

-- Newest first is the listing order.
CREATE INDEX events_created_at_idx ON events (created_at DESC, id DESC);

-- user_uid is the visitor token. It is text rather than uuid so a malformed
-- token can never turn a lookup into a server error; the service only ever
-- stores canonical lower-case UUIDs in it.
CREATE TABLE reservations (
    id              bigserial   PRIMARY KEY,
    user_uid        text        NOT NULL,
    event_id        bigint      NOT NULL REFERENCES events (id),
    status          text        NOT NULL,
    amount          bigint      NOT NULL,
    expires_at      timestamptz NOT NULL,
    idempotency_key text,
    created_at      timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL,
    CONSTRAINT reservations_amount_positive CHECK (amount > 0),
    CONSTRAINT reservations_status_valid
        CHECK (status IN ('reserved', 'purchased', 'cancelled', 'expired'))
);

-- The sweeper takes the oldest expired holds across all events.
CREATE INDEX reservations_reserved_expires_at_idx
    ON reservations (expires_at) WHERE status = 'reserved';

-- A reserve that finds stock short releases its event's expired holds.
CREATE INDEX reservations_reserved_event_expires_at_idx
    ON reservations (event_id, expires_at) WHERE status = 'reserved';

-- Per-visitor totals for max_per_visitor.
CREATE INDEX reservations_event_user_uid_idx ON reservations (event_id, user_uid);

-- One reservation per visitor and Idempotency-Key, even across processes.
CREATE UNIQUE INDEX reservations_user_uid_idempotency_key_idx
    ON reservations (user_uid, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- +goose Down
DROP TABLE reservations;
DROP TABLE events;
