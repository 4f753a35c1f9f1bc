package ticketrush

import (
	"context"
	"fmt"
	"time"
)

// Clock returns the current time. Every backend takes one so tests can move
// time (hold expiry) without sleeping; production uses time.Now.
type Clock func() time.Time

// Store is the contract every backend implements, and that storetest checks.
//
// Every method returns domain errors (*Error) for the cases named in its
// comment, and an EUnavailable error when the database cannot be reached
// before ctx's deadline. All times are UTC with microsecond precision.
//
// Holds expire exactly: a hold whose ExpiresAt is not after Clock() no longer
// counts against stock or a visitor's limit, whether or not a sweep has
// released it yet.
type Store interface {
	// CreateEvent creates an event with Capacity = TicketQuantity.
	// Returns EValidation if e does not validate.
	CreateEvent(ctx context.Context, e NewEvent) (*Event, error)

	// CreateFirstEvent creates an event only while the store has none, in
	// one atomic step, so that several nodes starting on one empty database
	// create the demo event once. It returns nil, nil when an event exists.
	// Returns EValidation if e does not validate.
	CreateFirstEvent(ctx context.Context, e NewEvent) (*Event, error)

	// Events returns every event, newest first (by CreatedAt, then ID),
	// hidden ones too.
	Events(ctx context.Context) ([]*Event, error)

	// Event returns one event.
	// Returns EEventNotFound if it does not exist.
	Event(ctx context.Context, id int64) (*Event, error)

	// Reserve is the original's strategy, kept as the measured baseline: one
	// transaction per request that locks the event row, releases the event's
	// expired holds if stock is short, checks, decrements and inserts.
	// Returns EEventNotFound, ESaleNotStarted, EVisitorLimit,
	// ENotEnoughTickets, EIdempotencyKeyReused; with an IdempotencyKey seen
	// before for this visitor and the same body, returns the first
	// reservation and takes nothing.
	Reserve(ctx context.Context, r ReserveRequest) (*Reservation, error)

	// ReserveBatch is group commit: it decides reqs, all for eventID, in
	// order, in one transaction, as if each were a Reserve applied one after
	// the other (limits and idempotency keys apply within the batch too). It
	// returns one result per request, in order, after the commit. If the
	// transaction fails it returns an error and no result: nothing applied.
	// An unknown event gives every request EEventNotFound.
	ReserveBatch(ctx context.Context, eventID int64, reqs []ReserveRequest) ([]ReserveResult, error)

	// ReserveBatches is group commit over several events at once: each
	// batch is decided as ReserveBatch decides it (its requests in order,
	// every limit, idempotency rule and admission check applied), and it
	// returns one result slice per batch, in order, after the commit. No
	// two batches may name the same event, and every request must be for
	// its batch's event. Where the backend has transactions (SQLite,
	// PostgreSQL) all batches share one transaction, event rows locked in
	// id order: if it fails ReserveBatches returns an error and no result,
	// nothing applied. Where each event commits on its own (Redis, whose
	// events live in different hash slots), a failed event's error is in
	// each of its results and the other events' results stand.
	ReserveBatches(ctx context.Context, batches []EventBatch) ([][]ReserveResult, error)

	// Reservation returns a reservation of the given visitor.
	// Returns EReservationNotFound if it does not exist or belongs to
	// another visitor.
	Reservation(ctx context.Context, id int64, visitor string) (*Reservation, error)

	// Purchase turns the visitor's unexpired hold into a sale.
	// Returns EReservationNotFound (missing, or another visitor's),
	// EAlreadyPurchased, ECancelled, and EExpired for a hold past its
	// ExpiresAt, which it releases (status expired, tickets back on sale)
	// in the same call.
	Purchase(ctx context.Context, id int64, visitor string) (*Reservation, error)

	// Cancel releases the visitor's hold at once: status cancelled, tickets
	// back on sale. Cancelling a cancelled hold returns it unchanged.
	// Returns EReservationNotFound, EAlreadyPurchased, and EExpired for a
	// hold past its ExpiresAt (which it releases as expired).
	Cancel(ctx context.Context, id int64, visitor string) (*Reservation, error)

	// SettleBatch is group commit of purchases and cancels: it decides
	// reqs, in order, in one transaction, as if each were a Purchase or a
	// Cancel applied one after the other (so a purchase then a cancel of
	// one hold in one batch give the purchase and EAlreadyPurchased). The
	// requests may name holds of any events. It returns one result per
	// request, in order, after the commit: the same reservation or domain
	// error the single call would give, and EExpired for a hold past its
	// ExpiresAt, which the same commit releases (status expired, tickets
	// back on sale). If the transaction fails it returns an error and no
	// result: nothing applied (EUnavailable), or, when the commit was sent
	// and its answer lost, EOutcomeUnknown. A backend that commits a batch
	// in parts of distinct holds (Redis, one script per event; PostgreSQL,
	// the plain sales first) may instead answer the requests of a part
	// that failed with that error and the others with their results.
	SettleBatch(ctx context.Context, reqs []SettleRequest) ([]SettleResult, error)

	// Stats counts the event's tickets by state; Available is
	// TicketQuantity, Held counts holds not yet released (status reserved).
	// Returns EEventNotFound.
	Stats(ctx context.Context, eventID int64) (*Stats, error)

	// ReleaseExpired releases at most limit expired holds across all
	// events: status expired, tickets back on sale. Each hold is released
	// exactly once even when several processes sweep at once. It returns how
	// many it released.
	ReleaseExpired(ctx context.Context, limit int) (int, error)

	// Ping reports whether the database answers.
	Ping(ctx context.Context) error

	// Close releases the store's connections.
	Close() error

	// Queues is the waiting room and the event settings that go with it.
	Queues
}

// EventBatch is the requests for one event in a ReserveBatches call, in
// arrival order.
type EventBatch struct {
	EventID int64
	Reqs    []ReserveRequest
}

// CheckBatches checks what ReserveBatches requires of its batches: no
// event twice. A request for another event than its batch's is answered
// by the backend, request by request.
func CheckBatches(batches []EventBatch) error {
	seen := make(map[int64]bool, len(batches))
	for _, b := range batches {
		if seen[b.EventID] {
			return fmt.Errorf("reserve batches: event %d appears in two batches", b.EventID)
		}
		seen[b.EventID] = true
	}
	return nil
}

// Reserver is one reserve strategy: a Store itself (the per-request lock of
// the original) or a group-commit batcher over a Store.
type Reserver interface {
	Reserve(ctx context.Context, r ReserveRequest) (*Reservation, error)
}

// Settlers are the purchase-and-cancel strategies: a Store itself (one
// transaction per call) or a group-commit batcher over a Store.
type Settler interface {
	Purchase(ctx context.Context, id int64, visitor string) (*Reservation, error)
	Cancel(ctx context.Context, id int64, visitor string) (*Reservation, error)
}

// SettleRequest asks to purchase or cancel the visitor's hold ID.
type SettleRequest struct {
	// Cancel is false for a purchase, true for a cancel.
	Cancel  bool
	ID      int64
	Visitor string
}

// SettleResult is the outcome of one SettleRequest in a batch: exactly one
// of Reservation and Err is set.
type SettleResult struct {
	Reservation *Reservation
	Err         error
}

// HoldUntil returns when a hold made at now for an event ends.
func HoldUntil(now time.Time, e *Event) time.Time {
	return now.Add(time.Duration(e.HoldSeconds) * time.Second).Truncate(time.Microsecond)
}

// Decide applies the reserve rules to one request against an event's state,
// the same in every backend and strategy. available is the event's stock,
// visitorHeld the tickets this visitor holds (unexpired) or bought for this
// event. It returns nil when the request fits.
func Decide(e *Event, now time.Time, r ReserveRequest, available, visitorHeld int64) error {
	switch {
	case e.SaleClosed:
		return ErrSaleClosed()
	case e.SaleStartsAt != nil && now.Before(*e.SaleStartsAt):
		return ErrSaleNotStarted()
	case e.MaxPerOrder > 0 && r.Amount > e.MaxPerOrder:
		return ErrOrderLimit(e.MaxPerOrder)
	case e.MaxPerVisitor > 0 && visitorHeld+r.Amount > e.MaxPerVisitor:
		return ErrVisitorLimit(e.MaxPerVisitor)
	case available < r.Amount:
		return ErrNotEnoughTickets()
	}
	return nil
}

// ErrIdempotencyKeyReused is returned when a key comes back with another body.
func ErrIdempotencyKeyReused() error {
	return Errorf(EIdempotencyKeyReused, "This Idempotency-Key was used with a different request.")
}
