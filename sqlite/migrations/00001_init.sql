-- The schema keeps the original's events and reservations tables and column
-- names, and adds what the features need.
--
-- Times are TEXT in one fixed-width UTC form, 2006-01-02T15:04:05.000000Z
-- (microseconds, always six digits, always Z), so comparing two of them as
-- strings compares them as instants: expires_at <= ? is an exact expiry test
-- that can use an index. The application writes every timestamp from its
-- injected clock; none comes from SQLite's own clock.
--
-- STRICT tables refuse a value of the wrong type instead of storing it.

-- +goose Up
CREATE TABLE events (
    id              INTEGER PRIMARY KEY,
    name            TEXT    NOT NULL,
    -- Tickets still on sale. Never negative, never more than were ever on sale.
    ticket_quantity INTEGER NOT NULL CHECK (ticket_quantity >= 0),
    capacity        INTEGER NOT NULL CHECK (capacity > 0),
    hold_seconds    INTEGER NOT NULL CHECK (hold_seconds > 0),
    -- 0 means no limit per visitor.
    max_per_visitor INTEGER NOT NULL DEFAULT 0 CHECK (max_per_visitor >= 0),
    -- NULL means on sale at once.
    sale_starts_at  TEXT,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    CHECK (ticket_quantity <= capacity)
) STRICT;

CREATE INDEX events_created_at ON events (created_at DESC, id DESC);

CREATE TABLE reservations (
    id              INTEGER PRIMARY KEY,
    -- The visitor token, a lower-case UUID.
    user_uid        TEXT    NOT NULL,
    event_id        INTEGER NOT NULL REFERENCES events (id),
    status          TEXT    NOT NULL
                    CHECK (status IN ('reserved', 'purchased', 'cancelled', 'expired')),
    amount          INTEGER NOT NULL CHECK (amount > 0),
    expires_at      TEXT    NOT NULL,
    created_at      TEXT    NOT NULL,
    updated_at      TEXT    NOT NULL,
    -- The client's Idempotency-Key; NULL when none was sent.
    idempotency_key TEXT,
    -- 1 when the event caps tickets per visitor (max_per_visitor > 0), which
    -- never changes once the event exists. Only these rows are indexed by
    -- visitor, see below.
    visitor_limited INTEGER NOT NULL DEFAULT 0 CHECK (visitor_limited IN (0, 1))
) STRICT;

-- The sweep finds expired holds of every event, a short reserve those of one
-- event; both only ever look at holds not yet released, so the indexes skip
-- every row that has left status reserved.
CREATE INDEX reservations_reserved_expires_at
    ON reservations (expires_at) WHERE status = 'reserved';
CREATE INDEX reservations_reserved_event_expires_at
    ON reservations (event_id, expires_at) WHERE status = 'reserved';

-- An event's reservations, for its stats. Within one event the key grows
-- with the row id, so a batch appends to the same few pages.
CREATE INDEX reservations_event ON reservations (event_id);

-- A visitor's tickets for one event, for max_per_visitor. Visitor tokens are
-- random, so every row of a batch would land on its own page of this index,
-- and each such page is one more 4 KiB written to the WAL before the commit:
-- measured, that made a batch four times slower. Only events with a limit
-- need the lookup, so only their rows are indexed.
CREATE INDEX reservations_limited_event_user
    ON reservations (event_id, user_uid) WHERE visitor_limited = 1;

-- One reservation per visitor and Idempotency-Key.
CREATE UNIQUE INDEX reservations_user_idempotency_key
    ON reservations (user_uid, idempotency_key) WHERE idempotency_key IS NOT NULL;

-- +goose Down
DROP TABLE reservations;
DROP TABLE events;
