package batch

import (
	"context"
	"errors"

	"github.com/ticketrush/ticketrush"
)

// Settler is a ticketrush.Settler that group-commits purchases and cancels
// through Store.SettleBatch, as the Batcher does reserves: while one batch's
// transaction is in flight, new requests queue; when it commits, the next
// transaction takes everything queued (up to Options.MaxBatch). A request
// is answered only after the commit that decided it.
//
// All requests share one queue, whatever their event: a purchase names its
// hold by id alone, so its event is not known before the store reads it,
// and the store decides a batch over many events in one transaction (each
// event's stock written once). Requests on one hold are decided in arrival
// order.
type Settler struct {
	g *Group[ticketrush.SettleRequest, ticketrush.SettleResult]
}

// settleKey is the one queue of a Settler.
const settleKey = 0

// NewSettler returns a Settler over s. Options.Metrics is not used.
func NewSettler(s ticketrush.Store, opts Options) *Settler {
	commit := func(ctx context.Context, _ int64, reqs []ticketrush.SettleRequest) ([]ticketrush.SettleResult, error) {
		res, err := s.SettleBatch(ctx, reqs)
		if ticketrush.ErrorCode(err) == ticketrush.EInternal &&
			(errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)) {
			// As in Batcher.run: the store had the requests and did not
			// say how far it got, so they may have been applied.
			err = ticketrush.OutcomeUnknown(err)
		}
		return res, err
	}
	return &Settler{g: NewGroup(commit, opts)}
}

// Purchase queues a purchase of the visitor's hold id and returns its
// outcome once the batch that decided it has committed. If ctx ends while
// the request is still queued it is never applied (EUnavailable).
func (st *Settler) Purchase(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	return st.do(ctx, ticketrush.SettleRequest{ID: id, Visitor: visitor})
}

// Cancel queues a cancel of the visitor's hold id, as Purchase does.
func (st *Settler) Cancel(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error) {
	return st.do(ctx, ticketrush.SettleRequest{Cancel: true, ID: id, Visitor: visitor})
}

func (st *Settler) do(ctx context.Context, r ticketrush.SettleRequest) (*ticketrush.Reservation, error) {
	res, err := st.g.Do(ctx, settleKey, r)
	if err != nil {
		return nil, err
	}
	return res.Reservation, res.Err
}

// Close waits for the running batches to finish.
func (st *Settler) Close() { st.g.Close() }

// Queued returns how many purchases and cancels wait for a batch.
func (st *Settler) Queued() int { return st.g.Queued() }
