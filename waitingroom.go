package ticketrush

import (
	"context"
	"time"
)

// The waiting room decides who may reserve, and when, on an event that has
// one. Visitors join a queue; those who join before the sale starts (the
// pre-queue) are put in a uniformly random order when it starts, drawn by
// the server from a cryptographic source; later joins queue behind them first
// come, first served. Admission follows position order, at most
// AdmitPerMinute in any sliding 60 s window of admission times and at most
// MaxActive active at once, across all nodes, because every node advances the
// queue through the same backend. An admitted visitor gets a signed pass
// (package httpapi signs and checks it) that its first successful reserve
// uses up.

// Queue entry states. The backend stores prequeue, waiting, admitted and
// expired; the API adds sold_out and paused, which describe the event rather
// than the entry (see QueueView).
const (
	QueuePrequeue = "prequeue"
	QueueWaiting  = "waiting"
	QueueAdmitted = "admitted"
	QueueExpired  = "expired"
	QueueSoldOut  = "sold_out"
	QueuePaused   = "paused"
)

// Limits of the waiting room settings and of the queue's own work.
const (
	MaxAdmitPerMinute  = 1_000_000
	MaxChallengeBits   = 24
	DefaultPassSeconds = 300
	// DefaultMaxPerOrder is the most tickets one reserve may take when an
	// event does not say: a deliberate change from the original, which let
	// one request take a whole event.
	DefaultMaxPerOrder = 10
	// QueueChunk bounds the rows one AdvanceQueue call shuffles, admits or
	// expires, so no call holds the queue's lock (or blocks Redis) for long.
	QueueChunk = 1000
)

// WaitingRoom is an event's waiting-room settings.
type WaitingRoom struct {
	// AdmitPerMinute caps admissions in any sliding 60 s window
	// (1…MaxAdmitPerMinute).
	AdmitPerMinute int64
	// MaxActive caps visitors admitted and not yet done: holding a pass
	// neither used nor expired, or holding tickets reserved with it. 0 means
	// no cap.
	MaxActive int64
	// PassSeconds is how long a pass is valid from admission
	// (1…MaxHoldSeconds; the HTTP layer fills DefaultPassSeconds).
	PassSeconds int64
	// PrequeueOpensAt is when visitors may first join; those who join
	// before SaleStartsAt form the pre-queue. nil means there is no
	// pre-queue: the queue opens at SaleStartsAt (or at once).
	PrequeueOpensAt *time.Time
	// ChallengeBits is the proof-of-work difficulty of a join
	// (0…MaxChallengeBits; 0 means no challenge).
	ChallengeBits int64
	// Paused stops admission; joins and polls go on.
	Paused bool
}

// Validate checks the settings and returns an EValidation error naming each
// bad field as prefix + "." + its JSON name.
func (w WaitingRoom) Validate(prefix string) error {
	v := ValidationError{}
	w.validate(v, prefix)
	return v.Err()
}

func (w WaitingRoom) validate(v ValidationError, prefix string) {
	if w.AdmitPerMinute < 1 || w.AdmitPerMinute > MaxAdmitPerMinute {
		v.Add(prefix+".admit_per_minute", "must be an integer from 1 to 1000000")
	}
	if w.MaxActive < 0 || w.MaxActive > MaxTicketQuantity {
		v.Add(prefix+".max_active", "must be an integer from 0 (no cap) to 100000000")
	}
	if w.PassSeconds < 1 || w.PassSeconds > MaxHoldSeconds {
		v.Add(prefix+".pass_seconds", "must be an integer from 1 to 86400")
	}
	if w.ChallengeBits < 0 || w.ChallengeBits > MaxChallengeBits {
		v.Add(prefix+".challenge_bits", "must be an integer from 0 to 24")
	}
}

// EventUpdate changes an event's settings; a nil field stays as it is.
// Package httpapi builds it from a JSON merge patch, merging a partial
// waiting_room object with the current settings first, so WaitingRoom is
// always complete.
type EventUpdate struct {
	Name        *string
	Hidden      *bool
	SaleClosed  *bool
	MaxPerOrder *int64
	// SetWaitingRoom replaces the waiting room with WaitingRoom; a nil
	// WaitingRoom removes it (the queue's entries go with it).
	SetWaitingRoom bool
	WaitingRoom    *WaitingRoom
}

// Validate checks the fields that are set.
func (u EventUpdate) Validate() error {
	v := ValidationError{}
	if u.Name != nil {
		validateName(v, *u.Name)
	}
	if u.MaxPerOrder != nil {
		validateMaxPerOrder(v, *u.MaxPerOrder)
	}
	if u.SetWaitingRoom && u.WaitingRoom != nil {
		u.WaitingRoom.validate(v, "waiting_room")
	}
	return v.Err()
}

// Apply returns a copy of e with u applied, as every backend stores it.
func (u EventUpdate) Apply(e *Event, now time.Time) *Event {
	c := *e
	if u.Name != nil {
		c.Name = *u.Name
	}
	if u.Hidden != nil {
		c.Hidden = *u.Hidden
	}
	if u.SaleClosed != nil {
		c.SaleClosed = *u.SaleClosed
	}
	if u.MaxPerOrder != nil {
		c.MaxPerOrder = *u.MaxPerOrder
	}
	if u.SetWaitingRoom {
		if u.WaitingRoom == nil {
			c.WaitingRoom = nil
		} else {
			w := *u.WaitingRoom
			c.WaitingRoom = &w
		}
	}
	c.UpdatedAt = now
	return &c
}

// JoinRequest asks for a visitor's place in an event's queue.
type JoinRequest struct {
	Visitor string
	// Challenge identifies the proof-of-work challenge (or other proof)
	// the join was verified with, "" when the room asks none. A join that
	// creates a new entry with the same Challenge as the visitor's previous
	// entry fails with EChallengeFailed: a challenge works once.
	Challenge string
}

// JoinResult is the outcome of one join in a batch: Entry, or Err.
type JoinResult struct {
	Entry *QueueEntry
	// Created is true when this join made the entry (the API answers 201),
	// false when the visitor already had a live one (200, same place).
	Created bool
	Err     error
}

// QueueEntry is a visitor's place in an event's queue.
type QueueEntry struct {
	EventID int64
	Visitor string
	// Attempt counts the visitor's entries in this event's queue, from 1.
	// A pass names the attempt it was issued for, so a pass from an earlier
	// admission is never valid again.
	Attempt int64
	// State is QueuePrequeue, QueueWaiting, QueueAdmitted or QueueExpired,
	// as of the store's clock when the entry was read: an admitted entry
	// whose pass ran out unused, or whose hold was cancelled or expired,
	// reads as expired even before AdvanceQueue has noticed.
	State string
	// Position is 1-based and fixed once given; 0 while in the pre-queue
	// before the shuffle.
	Position int64
	JoinedAt time.Time
	// AdmittedAt and PassExpiresAt are set once admitted.
	AdmittedAt    *time.Time
	PassExpiresAt *time.Time
	// ReservationID is the hold made with this admission's pass; 0 while
	// the pass is unused.
	ReservationID int64
}

// QueueStats describes an event's queue as a whole: what a poll needs
// beside the visitor's own entry, and what the dashboard shows.
type QueueStats struct {
	EventID int64
	// Prequeue counts entries waiting for the shuffle.
	Prequeue int64
	// Waiting counts entries with a position, not yet admitted.
	Waiting int64
	// Serving is the highest position admitted so far. Admission follows
	// position order and positions are dense, so an entry at position p
	// that is waiting has p - Serving - 1 visitors ahead of it.
	Serving int64
	// Tail is the highest position given so far.
	Tail int64
	// Shuffled is true once the pre-queue has been put in order (or there
	// was none and the sale has started).
	Shuffled bool
	// Admitted counts admissions ever; AdmittedLastMinute those stamped in
	// the last 60 s; Active those admitted and not yet done (see
	// WaitingRoom.MaxActive).
	Admitted           int64
	AdmittedLastMinute int64
	Active             int64
	// Available and Held are the event's stock on sale and tickets held,
	// so a poll can tell sold_out (no stock, no holds that could come back).
	Available int64
	Held      int64
}

// QueueAdvance reports what one AdvanceQueue call did.
type QueueAdvance struct {
	Shuffled int
	Admitted int
	Expired  int
	// More is true when the call stopped at QueueChunk with work left: the
	// caller should advance again at once.
	More bool
}

// Queues is the waiting-room part of the Store contract.
type Queues interface {
	// UpdateEvent applies u to the event and returns it.
	// Returns EEventNotFound, EValidation.
	UpdateEvent(ctx context.Context, id int64, u EventUpdate) (*Event, error)

	// DeleteEvent removes an event that has never had a reservation, and
	// its queue.
	// Returns EEventNotFound, EEventHasReservations.
	DeleteEvent(ctx context.Context, id int64) error

	// JoinQueue joins reqs, all for eventID, in order, in one transaction
	// (group commit, like ReserveBatch). A visitor whose entry is live
	// (prequeue, waiting or admitted) keeps it (Created false); one whose
	// entry expired, or who never joined, gets a new entry: in the
	// pre-queue before the sale starts (after PrequeueOpensAt), else
	// waiting at the back. It returns one result per request, in order,
	// after the commit; if the transaction fails, an error and no result.
	// Per request: EEventNotFound, EWaitingRoomNotFound (no waiting room),
	// EQueueNotOpen (before PrequeueOpensAt, or before SaleStartsAt when
	// there is no pre-queue), ESaleClosed, EChallengeFailed (see
	// JoinRequest.Challenge).
	JoinQueue(ctx context.Context, eventID int64, reqs []JoinRequest) ([]JoinResult, error)

	// QueueEntry returns the visitor's entry, its state as of now.
	// Returns EEventNotFound, EWaitingRoomNotFound, ENotInQueue.
	QueueEntry(ctx context.Context, eventID int64, visitor string) (*QueueEntry, error)

	// QueueStats describes the event's queue.
	// Returns EEventNotFound, EWaitingRoomNotFound.
	QueueStats(ctx context.Context, eventID int64) (*QueueStats, error)

	// AdvanceQueue does a bounded step of the queue's work, in this order,
	// on the backend's clock and safely from several processes at once
	// (each step happens exactly once):
	//  1. once the sale has started, close the pre-queue (later joins go
	//     to the back) and shuffle it: each pre-queue entry gets a key from
	//     a cryptographic random source drawn now, and positions 1…P in key
	//     order, at most QueueChunk entries a call;
	//  2. mark expired the admitted entries whose pass ran out unused or
	//     whose hold was cancelled or expired (at most QueueChunk);
	//  3. unless the room is paused, the shuffle is unfinished, or the
	//     event has no stock on sale, admit the next waiting entries in
	//     position order, as many as Admissions allows (at most
	//     QueueChunk), stamping AdmittedAt with the backend's clock and
	//     PassExpiresAt = AdmittedAt + PassSeconds.
	// Returns EEventNotFound, EWaitingRoomNotFound.
	AdvanceQueue(ctx context.Context, eventID int64) (*QueueAdvance, error)
}

// Admissions returns how many visitors one advance may admit: what the
// sliding window and the active cap leave, smoothed so that a room admitting
// 600 a minute lets in about 10 a second rather than 600 at once.
// admittedLastMinute counts admissions stamped after now-60s, active those
// counted by MaxActive, sinceLast the time since the latest admission
// stamp (time.Second when there is none). Several steps at one instant
// admit one each until the window is full, so the window stays exact
// however many nodes advance at once.
func Admissions(w *WaitingRoom, admittedLastMinute, active int64, sinceLast time.Duration) int64 {
	if w == nil || w.Paused {
		return 0
	}
	n := w.AdmitPerMinute - admittedLastMinute
	if w.MaxActive > 0 {
		n = min(n, w.MaxActive-active)
	}
	sinceLast = min(max(sinceLast, 0), time.Minute)
	// ceil(rate × sinceLast / 1 min), and at least one: a slow room still
	// moves once its window has room.
	smooth := max((w.AdmitPerMinute*int64(sinceLast/time.Millisecond)+59_999)/60_000, 1)
	n = min(n, smooth, QueueChunk)
	return max(n, 0)
}

// CheckAdmission applies a waiting room's rule to a reserve, the same in
// every backend: called inside the reserve's transaction after the
// idempotency check (a retry with the same key answers before it), with the
// visitor's entry (nil when none) and the store's clock. It returns nil when
// the event has no waiting room, or when r carries a pass for the entry's
// current admission that is unused and unexpired; the backend then records
// the new reservation's id on the entry in the same transaction.
func CheckAdmission(e *Event, entry *QueueEntry, now time.Time, r ReserveRequest) error {
	if e.WaitingRoom == nil {
		return nil
	}
	switch {
	case r.Admission == 0:
		return ErrAdmissionRequired()
	case entry == nil || entry.Attempt != r.Admission || entry.AdmittedAt == nil:
		return ErrAdmissionInvalid()
	case entry.ReservationID != 0:
		return ErrAdmissionUsed()
	case entry.PassExpiresAt == nil || !now.Before(*entry.PassExpiresAt):
		return ErrAdmissionExpired()
	}
	return nil
}
