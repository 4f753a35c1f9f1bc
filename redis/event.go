package redis

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/ticketrush/ticketrush"
)

// eventFields are the event hash fields an Event is read from, in order.
var eventFields = []string{"name", "ticket_quantity", "capacity", "hold_seconds",
	"max_per_visitor", "sale_starts_at", "created_at", "updated_at"}

func errEventNotFound() error {
	return ticketrush.ErrEventNotFound()
}

// CreateEvent creates an event with Capacity = TicketQuantity.
//
// The id comes from a global counter, and the event is added to the global
// index before its hash is written, because the two live in different slots
// and cannot change in one script: a crash in between leaves an id in the
// index with no event, which every reader skips, never an event that
// Events and the sweeper cannot see.
func (s *Store) CreateEvent(ctx context.Context, ne ticketrush.NewEvent) (*ticketrush.Event, error) {
	if err := ne.Validate(); err != nil {
		return nil, err
	}
	id, err := s.rdb.Incr(ctx, s.counterKey()).Result()
	if err != nil {
		return nil, s.fail(err)
	}
	if id > maxEvent {
		return nil, errors.New("redis: no event ids left")
	}
	if err := s.rdb.ZAdd(ctx, s.indexKey(), goredis.Z{Score: float64(id), Member: id}).Err(); err != nil {
		return nil, s.fail(err)
	}
	e := &ticketrush.Event{
		ID:             id,
		Name:           ne.Name,
		TicketQuantity: ne.TicketQuantity,
		Capacity:       ne.TicketQuantity,
		HoldSeconds:    ne.HoldSeconds,
		MaxPerVisitor:  ne.MaxPerVisitor,
	}
	sale := ""
	if ne.SaleStartsAt != nil {
		t := ne.SaleStartsAt.UTC().Truncate(time.Microsecond)
		e.SaleStartsAt = &t
		sale = strconv.FormatInt(t.UnixMicro(), 10)
	}
	created, err := createEventScript.Run(ctx, s.rdb, s.eventKeys(id, 0)[:1], s.clockArg(), e.Name,
		e.TicketQuantity, e.HoldSeconds, e.MaxPerVisitor, sale).Int64()
	if err != nil {
		return nil, s.fail(err)
	}
	e.CreatedAt = micros(created)
	e.UpdatedAt = e.CreatedAt
	return e, nil
}

// Events returns every event, newest first (by CreatedAt, then ID). It reads
// the index, then every event hash in one pipeline (one round trip per
// shard).
func (s *Store) Events(ctx context.Context) ([]*ticketrush.Event, error) {
	ids, err := s.eventIDs(ctx)
	if err != nil {
		return nil, err
	}
	events := []*ticketrush.Event{}
	if len(ids) == 0 {
		return events, nil
	}
	cmds := make([]*goredis.SliceCmd, len(ids))
	_, err = s.rdb.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for i, id := range ids {
			cmds[i] = p.HMGet(ctx, s.eventBase(id), eventFields...)
		}
		return nil
	})
	if err != nil {
		return nil, s.fail(err)
	}
	for i, id := range ids {
		e, err := scanEvent(id, cmds[i].Val())
		if err != nil {
			return nil, err
		}
		if e != nil {
			events = append(events, e)
		}
	}
	slices.SortFunc(events, func(a, b *ticketrush.Event) int {
		if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
			return c
		}
		return cmp.Compare(b.ID, a.ID)
	})
	return events, nil
}

// eventIDs reads the global index of events.
func (s *Store) eventIDs(ctx context.Context) ([]int64, error) {
	members, err := s.rdb.ZRange(ctx, s.indexKey(), 0, -1).Result()
	if err != nil {
		return nil, s.fail(err)
	}
	ids := make([]int64, 0, len(members))
	for _, m := range members {
		id, err := strconv.ParseInt(m, 10, 64)
		if err != nil {
			return nil, errors.New("redis: bad member in the event index")
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// Event returns one event, or EEventNotFound.
func (s *Store) Event(ctx context.Context, id int64) (*ticketrush.Event, error) {
	if id < 1 || id > maxEvent {
		return nil, errEventNotFound()
	}
	v, err := s.rdb.HMGet(ctx, s.eventBase(id), eventFields...).Result()
	if err != nil {
		return nil, s.fail(err)
	}
	e, err := scanEvent(id, v)
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, errEventNotFound()
	}
	return e, nil
}

// scanEvent decodes HMGET eventFields; it returns nil for a missing event.
func scanEvent(id int64, v []any) (*ticketrush.Event, error) {
	if len(v) != len(eventFields) || v[0] == nil {
		return nil, nil
	}
	str := make([]string, len(v))
	for i, x := range v {
		str[i], _ = x.(string)
	}
	var n [6]int64
	for i, f := range []int{1, 2, 3, 4, 6, 7} {
		x, err := strconv.ParseInt(str[f], 10, 64)
		if err != nil {
			return nil, errors.New("redis: bad event hash " + strconv.FormatInt(id, 10))
		}
		n[i] = x
	}
	e := &ticketrush.Event{
		ID:             id,
		Name:           str[0],
		TicketQuantity: n[0],
		Capacity:       n[1],
		HoldSeconds:    n[2],
		MaxPerVisitor:  n[3],
		CreatedAt:      micros(n[4]),
		UpdatedAt:      micros(n[5]),
	}
	if str[5] != "" {
		x, err := strconv.ParseInt(str[5], 10, 64)
		if err != nil {
			return nil, errors.New("redis: bad event hash " + strconv.FormatInt(id, 10))
		}
		t := micros(x)
		e.SaleStartsAt = &t
	}
	return e, nil
}

// Stats counts the event's tickets by state. The scripts keep the counts in
// the event hash as they change statuses, so one HMGET reads them all at one
// instant.
func (s *Store) Stats(ctx context.Context, eventID int64) (*ticketrush.Stats, error) {
	if eventID < 1 || eventID > maxEvent {
		return nil, errEventNotFound()
	}
	v, err := s.rdb.HMGet(ctx, s.eventBase(eventID),
		"capacity", "ticket_quantity", "held", "purchased", "expired", "cancelled").Result()
	if err != nil {
		return nil, s.fail(err)
	}
	if v[0] == nil {
		return nil, errEventNotFound()
	}
	var n [6]int64
	for i, x := range v {
		str, _ := x.(string)
		if n[i], err = strconv.ParseInt(str, 10, 64); err != nil {
			return nil, errors.New("redis: bad event hash " + strconv.FormatInt(eventID, 10))
		}
	}
	return &ticketrush.Stats{EventID: eventID, Capacity: n[0], Available: n[1], Held: n[2],
		Purchased: n[3], Expired: n[4], Cancelled: n[5]}, nil
}
