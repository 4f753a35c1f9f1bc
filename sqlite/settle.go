package sqlite

import (
	"context"
	"encoding/json"
	"strings"

	"github.com/ticketrush/ticketrush"
)

// Statements of SettleBatch, each one per batch whatever its size: the ids
// and the new statuses go in as JSON arrays (read back with json_each), as
// the reserve batch's rows do.
const (
	// sqlSettleHolds reads the batch's holds, each once.
	sqlSettleHolds = `SELECT ` + reservationColumns + ` FROM reservations AS r
		WHERE r.id IN (SELECT value FROM json_each(?))`

	// sqlSettleStatuses takes [[id, status], …] and ?2, now.
	sqlSettleStatuses = `UPDATE reservations SET status = j.value ->> 1, updated_at = ?2
		FROM json_each(?1) AS j WHERE reservations.id = j.value ->> 0`
)

// SettleBatch is group commit of purchases and cancels: one write
// transaction, so one commit (and one fsync) for the whole batch, and two
// statements whatever its size: one reads every hold it names, one writes
// every hold it changed, plus one stock update per event it restocked.
// Each request is decided in order against the holds as the earlier
// requests of the batch left them, exactly as settle decides a single
// call; a hold found past its ExpiresAt is released as expired in the same
// transaction.
func (s *Store) SettleBatch(ctx context.Context, reqs []ticketrush.SettleRequest) ([]ticketrush.SettleResult, error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	st, err := s.statements(ctx)
	if err != nil {
		return nil, err
	}
	ids := make([]int64, len(reqs))
	for i, q := range reqs {
		ids[i] = q.ID
	}
	idsJSON, err := json.Marshal(ids)
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
	holds := map[int64]*ticketrush.Reservation{} // as this batch leaves them
	rows, err := tx.QueryContext(ctx, sqlSettleHolds, string(idsJSON))
	if err != nil {
		return nil, dbError(ctx, err)
	}
	for rows.Next() {
		r, err := scanReservation(rows)
		if err != nil {
			rows.Close()
			return nil, dbError(ctx, err)
		}
		holds[r.ID] = r
	}
	if err := rows.Close(); err != nil {
		return nil, dbError(ctx, err)
	}
	if err := rows.Err(); err != nil {
		return nil, dbError(ctx, err)
	}

	results := make([]ticketrush.SettleResult, len(reqs))
	restock := map[int64]int64{} // event → tickets back on sale
	var events []int64           // restock's keys, in first-seen order
	var changed [][2]any         // [id, status] of each hold settled
	for i, q := range reqs {
		r := holds[q.ID]
		if r == nil || r.UserUID != strings.ToLower(q.Visitor) {
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
		r.Status, r.UpdatedAt = status, now
		changed = append(changed, [2]any{r.ID, status})
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
	if len(changed) == 0 {
		// Nothing to write: the rollback costs no commit.
		return results, nil
	}
	changedJSON, err := json.Marshal(changed)
	if err != nil {
		return nil, err
	}
	if _, err := tx.ExecContext(ctx, sqlSettleStatuses, string(changedJSON), nowText); err != nil {
		return nil, dbError(ctx, err)
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
