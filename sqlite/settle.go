package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"

	"github.com/ticketrush/ticketrush"
)

// SettleBatch is group commit of purchases and cancels: one write
// transaction, so one commit (and one fsync) for the whole batch. Each
// request is decided in order against the holds as the earlier requests of
// the batch left them, exactly as settle decides a single call; a hold
// found past its ExpiresAt is released as expired in the same transaction.
// The stock of each event is written once, at the end.
func (s *Store) SettleBatch(ctx context.Context, reqs []ticketrush.SettleRequest) ([]ticketrush.SettleResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	st, err := s.statements(ctx)
	if err != nil {
		return nil, err
	}
	tx, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()

	now := s.clock()
	nowText := formatTime(now)
	read := tx.StmtContext(ctx, st.reservation)
	setStatus := tx.StmtContext(ctx, st.setStatus)
	results := make([]ticketrush.SettleResult, len(reqs))
	holds := map[int64]*ticketrush.Reservation{} // as this batch left them
	restock := map[int64]int64{}                 // event → tickets back on sale
	var events []int64                           // restock's keys, in first-seen order
	changed := false
	for i, q := range reqs {
		visitor := strings.ToLower(q.Visitor)
		r, ok := holds[q.ID]
		if !ok {
			r, err = scanReservation(read.QueryRowContext(ctx, q.ID, visitor))
			switch {
			case errors.Is(err, sql.ErrNoRows):
				results[i].Err = errReservationNotFound()
				continue
			case err != nil:
				return nil, dbError(ctx, err)
			}
			holds[q.ID] = r
		}
		if r.UserUID != visitor {
			results[i].Err = errReservationNotFound()
			continue
		}
		switch r.Status {
		case ticketrush.StatusPurchased:
			results[i].Err = ticketrush.ErrAlreadyPurchased()
			continue
		case ticketrush.StatusCancelled:
			if q.Cancel {
				c := *r
				results[i].Reservation = &c
			} else {
				results[i].Err = ticketrush.ErrCancelled()
			}
			continue
		case ticketrush.StatusExpired:
			results[i].Err = errExpired()
			continue
		}
		status := ticketrush.StatusPurchased
		switch {
		case !r.ExpiresAt.After(now):
			status = ticketrush.StatusExpired
		case q.Cancel:
			status = ticketrush.StatusCancelled
		}
		if _, err := setStatus.ExecContext(ctx, status, nowText, r.ID); err != nil {
			return nil, dbError(ctx, err)
		}
		r.Status, r.UpdatedAt = status, now
		changed = true
		if status != ticketrush.StatusPurchased {
			if _, ok := restock[r.EventID]; !ok {
				events = append(events, r.EventID)
			}
			restock[r.EventID] += r.Amount
		}
		if status == ticketrush.StatusExpired {
			results[i].Err = errExpired()
			continue
		}
		c := *r
		results[i].Reservation = &c
	}
	if !changed {
		// Nothing to write: the rollback costs no commit.
		return results, nil
	}
	addStock := tx.StmtContext(ctx, st.addStock)
	for _, id := range events {
		if _, err := addStock.ExecContext(ctx, restock[id], nowText, id); err != nil {
			return nil, dbError(ctx, err)
		}
	}
	if err := s.commit(ctx, tx); err != nil {
		return nil, err
	}
	return results, nil
}
