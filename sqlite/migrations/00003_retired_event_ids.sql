-- SQLite gives a new row the highest id in the table plus one, so once the
-- newest event was deleted its id would go to the next event created, and
-- links, challenges and passes made for the old event would name the new
-- one. PostgreSQL (a sequence) and Redis (a counter) never reuse an id; here
-- a deleted event's id is retired, and new ids start above every retired one.

-- +goose Up
CREATE TABLE retired_event_ids (
    id INTEGER PRIMARY KEY
) STRICT;

-- +goose Down
DROP TABLE retired_event_ids;
