// Package redis implements ticketrush.Store on Redis (one primary) and on
// Redis Cluster, with every change made by one Lua script.
//
// # Keys
//
// All keys start with a prefix (default "tr"). Everything of one event
// shares the hash tag {e:ID}, so it lives in one Cluster slot and events
// spread over the shards:
//
//	tr:{e:42}            hash: name, ticket_quantity, capacity, hold_seconds,
//	                     max_per_visitor, sale_starts_at, created_at,
//	                     updated_at; counters seq, held, purchased, expired,
//	                     cancelled (tickets by status, for Stats)
//	tr:{e:42}:res        hash: reservation number -> record
//	                     "status amount visitor expires_at created_at updated_at key"
//	tr:{e:42}:holds      sorted set: numbers of holds in status reserved,
//	                     scored by expires_at (µs)
//	tr:{e:42}:visitors   hash: visitor -> "bought number:expires_at:amount ...",
//	                     the tickets the visitor bought and the visitor's
//	                     holds, so one visitor's total is one HGET at any
//	                     size (max_per_visitor)
//	tr:{e:42}            also: max_per_order, hidden, sale_closed, and the
//	                     waiting room (wr, wr_apm, wr_max_active, wr_pass,
//	                     wr_preopen, wr_bits, wr_paused)
//	tr:{e:42}:q          hash: visitor -> queue entry record
//	tr:{e:42}:qstate     hash: the queue's counters (closed, pre, next,
//	                     assigned, done, tail, serving, admitted, last,
//	                     npre, nwait)
//	tr:{e:42}:qpre       list: the pre-queue in join order, before the shuffle
//	tr:{e:42}:qshuffle   sorted set: pre-queue visitors by random key
//	tr:{e:42}:qorder     hash: position -> visitor, given and not yet admitted
//	tr:{e:42}:qactive    sorted set: admitted visitors not yet done, scored
//	                     by when they stop being active
//	tr:{e:42}:qstamps    sorted set: admission stamps of the last 60 s
//	tr:{e:42}:run:ID:TTL a write script's answer, kept TTL s (Cluster only;
//	                     see below)
//	tr:{e:42}:idem       hash: "visitor key" -> reservation id (Cluster only)
//	tr:{v:UUID}:idem     hash: Idempotency-Key -> reservation id (one primary)
//	tr:{v:UUID}:claims   hash: Idempotency-Key -> event id (Cluster only)
//	tr:events            sorted set: every event id (Events, the sweeper)
//	tr:events:seq        counter: the last event id
//	tr:schema            the data layout version (Migrate, SchemaVersion)
//
// Times are integer microseconds since the Unix epoch, UTC.
//
// # Reservation ids
//
// The API names a reservation by its id alone, and a script must be sent to
// the slot of the reservation's event. Rather than look the event up first
// (a second, separate read), the id carries it: id = event_id·2^28 + n,
// where n counts the event's reservations from 1. Ids stay below 2^53, so
// JavaScript clients read them exactly; the price is a bound of 2^25
// (33 million) events of 2^28 (268 million) reservations each.
//
// # Why one script per change is enough
//
// Redis executes one command at a time, and a Lua script is one command:
// while it runs no other client's command or script runs on that primary, and
// its writes reach the replicas and the AOF as one unit. Each reserve,
// purchase, cancel or release reads the event's state, decides, and writes,
// inside one script, so it is atomic and isolated exactly as a transaction
// on a locked event row is — without a lock to wait for, since the script
// holds the whole server for its few microseconds. A batch of reserves is one
// script too (group commit), which amortises the round trip, the script
// call and, with appendfsync always, the fsync over the whole batch. On a
// Cluster every script touches the slot of one event only, so the same holds
// per event, and events on different primaries proceed in parallel.
//
// The time every script uses is Redis' own (TIME) unless Options.Now is set,
// so several server processes agree on when a hold expires.
//
// # Why not Redlock
//
// The original project suggests Redis with Lua, "or Redlock". A distributed
// lock would not make stock safer. As Martin Kleppmann showed ("How to do
// distributed locking", 2016), a lock holder can pause (GC, page fault,
// network delay) past its lease and still act on the stock while another
// holder does too; Redlock has no fencing token to stop the stale writer,
// and its safety rests on bounded clock drift and delays. Here nothing needs
// to be locked across a network: the decision and the write happen inside
// the single primary that owns the event, in one step. The lock would only
// add round trips and a failure mode.
//
// # Durability
//
// A reservation is acknowledged once Redis answered the script. What
// survives a crash depends on Redis' configuration, not on this package:
//
//   - appendonly yes, appendfsync always: Redis fsyncs the AOF before it
//     answers (one fsync per event loop cycle, shared by every command of
//     the cycle), so an acknowledged reservation survives a power cut, as
//     with the SQL backends.
//   - appendonly yes, appendfsync everysec (Redis' default when AOF is on):
//     a crash of the machine loses up to about the last second of
//     acknowledged changes; a crash of the Redis process alone loses
//     nothing.
//   - appendonly no: only RDB snapshots, if any; a crash loses everything
//     since the last one. AOFEnabled lets the server warn at start.
//
// Replication is asynchronous: a failover can lose the last changes the old
// primary acknowledged, whatever the fsync policy (WAIT narrows but does not
// close that window).
//
// Lost replies. A write whose reply is lost after the command was sent
// may have run: the caller gets EOutcomeUnknown and may retry with its
// Idempotency-Key. A failure before anything was sent (no connection, pool
// timeout, a context already done) is EUnavailable. On a single Redis the
// client does not send a command twice. The Cluster client does, after a
// broken connection, in the same loop that follows MOVED and ASK (which
// must stay on); so every write script that would answer differently the
// second time (reserve, reserve_batch, purchase, settle_batch, join,
// advance, delete_event) first looks for a run record under its call's run id and
// returns the first run's answer, and records its own answer for 30 s more
// than the call's deadline leaves (no attempt can start after it). A
// single Redis keeps no run records.
// create_event answers from the event hash its id names, claim from the
// claim's run id; cancel, release_expired and update_event are harmless to
// repeat.
//
// # Bounded work
//
// A script blocks the whole server while it runs, so none loops over an
// unbounded set: a reserve releases only the expired holds it needs, at most
// releaseChunk per call (the script answers "more" and Go calls again), the
// sweep releases in the same chunks, and a queue step shuffles, expires or
// admits at most ticketrush.QueueChunk entries.
package redis
