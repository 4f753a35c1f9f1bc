-- Event settings and the waiting room. Times are TEXT in the fixed-width UTC
-- form of 00001 (2006-01-02T15:04:05.000000Z), so string order is time order.

-- +goose Up

-- The most tickets one reserve may take. Existing events get the default,
-- which is a deliberate change from the original (one request could take a
-- whole event).
ALTER TABLE events ADD COLUMN max_per_order INTEGER NOT NULL DEFAULT 10
    CHECK (max_per_order BETWEEN 1 AND 10000);
-- Left out of the public listing, still readable by id.
ALTER TABLE events ADD COLUMN hidden INTEGER NOT NULL DEFAULT 0 CHECK (hidden IN (0, 1));
-- Stops reserves; purchases and cancels of existing holds go on.
ALTER TABLE events ADD COLUMN sale_closed INTEGER NOT NULL DEFAULT 0 CHECK (sale_closed IN (0, 1));

-- An event has a waiting room when it has a row here. The row holds the
-- room's settings and its queue's counters, and it is what a step of the
-- queue reads and writes under the database's write lock, so every step
-- happens once however many processes advance the queue.
CREATE TABLE waiting_rooms (
    event_id          INTEGER PRIMARY KEY REFERENCES events (id),
    admit_per_minute  INTEGER NOT NULL CHECK (admit_per_minute BETWEEN 1 AND 1000000),
    -- 0 means no cap.
    max_active        INTEGER NOT NULL CHECK (max_active >= 0),
    pass_seconds      INTEGER NOT NULL CHECK (pass_seconds BETWEEN 1 AND 86400),
    -- NULL means no pre-queue: the queue opens at the sale's start.
    prequeue_opens_at TEXT,
    challenge_bits    INTEGER NOT NULL CHECK (challenge_bits BETWEEN 0 AND 24),
    paused            INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),

    -- 1 once the sale has started and the pre-queue took its last entry;
    -- prequeue_size is then its size P, and positions 1…P are its own.
    prequeue_closed   INTEGER NOT NULL DEFAULT 0 CHECK (prequeue_closed IN (0, 1)),
    prequeue_size     INTEGER NOT NULL DEFAULT 0 CHECK (prequeue_size >= 0),
    -- Positions given by the shuffle so far (1…shuffled); admission waits
    -- until shuffled = prequeue_size.
    shuffled          INTEGER NOT NULL DEFAULT 0 CHECK (shuffled BETWEEN 0 AND prequeue_size),
    -- Highest position given (or kept for the pre-queue).
    tail              INTEGER NOT NULL DEFAULT 0 CHECK (tail >= prequeue_size),
    -- Highest position admitted.
    serving           INTEGER NOT NULL DEFAULT 0 CHECK (serving BETWEEN 0 AND tail),
    -- Admissions ever.
    admitted          INTEGER NOT NULL DEFAULT 0 CHECK (admitted >= 0)
) STRICT;

-- One row per visitor and attempt; a visitor's current entry is the one
-- with the highest attempt.
CREATE TABLE queue_entries (
    id              INTEGER PRIMARY KEY,
    event_id        INTEGER NOT NULL REFERENCES waiting_rooms (event_id),
    -- The visitor token, a lower-case UUID.
    visitor         TEXT    NOT NULL,
    attempt         INTEGER NOT NULL CHECK (attempt >= 1),
    state           TEXT    NOT NULL
                    CHECK (state IN ('prequeue', 'waiting', 'admitted', 'expired')),
    -- NULL in the pre-queue until the shuffle gives one.
    position        INTEGER CHECK (position >= 1),
    -- The shuffle's random key, drawn from a cryptographic source when the
    -- shuffle runs (never derived from the visitor); positions follow
    -- (shuffle_key, id).
    shuffle_key     INTEGER,
    -- What the join was verified with, so a challenge works once.
    challenge       TEXT,
    joined_at       TEXT    NOT NULL,
    admitted_at     TEXT,
    pass_expires_at TEXT,
    -- The hold made with this admission's pass.
    reservation_id  INTEGER REFERENCES reservations (id),
    -- 1 once that hold was purchased: still admitted, no longer active, and
    -- no longer looked at by the queue's expiry step.
    done            INTEGER NOT NULL DEFAULT 0 CHECK (done IN (0, 1)),
    CHECK ((state = 'prequeue') = (position IS NULL)),
    CHECK ((admitted_at IS NULL) = (pass_expires_at IS NULL))
) STRICT;

-- A visitor's entries, the latest first; also what makes (visitor, attempt)
-- unique.
CREATE UNIQUE INDEX queue_entries_visitor ON queue_entries (event_id, visitor, attempt);

-- The pre-queue in shuffle order; entries without a key yet sort first.
CREATE INDEX queue_entries_prequeue ON queue_entries (event_id, shuffle_key, id)
    WHERE state = 'prequeue';

-- The next to admit.
CREATE INDEX queue_entries_waiting ON queue_entries (event_id, position)
    WHERE state = 'waiting';

-- Admitted and not done: the active ones and those the expiry step must
-- look at.
CREATE INDEX queue_entries_live ON queue_entries (event_id, pass_expires_at)
    WHERE state = 'admitted' AND done = 0;

-- Admission stamps, for the exact sliding 60 s window.
CREATE INDEX queue_entries_admitted_at ON queue_entries (event_id, admitted_at)
    WHERE admitted_at IS NOT NULL;

-- +goose Down
DROP TABLE queue_entries;
DROP TABLE waiting_rooms;
ALTER TABLE events DROP COLUMN sale_closed;
ALTER TABLE events DROP COLUMN hidden;
ALTER TABLE events DROP COLUMN max_per_order;
