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
	"max_per_visitor", "sale_starts_at", "created_at", "updated_at",
	"max_per_order", "hidden", "sale_closed",
	"wr", "wr_apm", "wr_max_active", "wr_pass", "wr_preopen", "wr_bits", "wr_paused"}

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
	return s.createEvent(ctx, ne, false)
}

// CreateFirstEvent creates an event only while the store has none, so
// that of several processes seeding one empty database exactly one creates
// the demo event: the id joins the index by a script that adds it only to
// an empty index. It returns nil, nil when an event exists. (An id taken
// and not used leaves a gap in the ids, nothing else.)
func (s *Store) CreateFirstEvent(ctx context.Context, ne ticketrush.NewEvent) (*ticketrush.Event, error) {
	return s.createEvent(ctx, ne, true)
}

func (s *Store) createEvent(ctx context.Context, ne ticketrush.NewEvent, first bool) (*ticketrush.Event, error) {
	if err := ne.Validate(); err != nil {
		return nil, err
	}
	ctx = writing(ctx)
	id, err := s.rdb.Incr(ctx, s.counterKey()).Result()
	if err != nil {
		return nil, s.failWrite(ctx, err)
	}
	if id > maxEvent {
		return nil, errors.New("redis: no event ids left")
	}
	if first {
		added, err := createFirstScript.Run(ctx, s.rdb, []string{s.indexKey()}, id).Int()
		if err != nil {
			return nil, s.failWrite(ctx, err)
		}
		if added == 0 {
			return nil, nil
		}
	} else if err := s.rdb.ZAdd(ctx, s.indexKey(), goredis.Z{Score: float64(id), Member: id}).Err(); err != nil {
		return nil, s.failWrite(ctx, err)
	}
	e := &ticketrush.Event{
		ID:             id,
		Name:           ne.Name,
		TicketQuantity: ne.TicketQuantity,
		Capacity:       ne.TicketQuantity,
		HoldSeconds:    ne.HoldSeconds,
		MaxPerVisitor:  ne.MaxPerVisitor,
		MaxPerOrder:    ne.OrderLimit(),
		Hidden:         ne.Hidden,
	}
	sale := ""
	if ne.SaleStartsAt != nil {
		t := ne.SaleStartsAt.UTC().Truncate(time.Microsecond)
		e.SaleStartsAt = &t
		sale = strconv.FormatInt(t.UnixMicro(), 10)
	}
	if ne.WaitingRoom != nil {
		e.WaitingRoom = normalRoom(ne.WaitingRoom)
	}
	args := []any{s.clockArg(), e.Name, e.TicketQuantity, e.HoldSeconds, e.MaxPerVisitor, sale,
		e.MaxPerOrder, flag(e.Hidden)}
	args = append(args, roomArgs(e.WaitingRoom)...)
	created, err := createEventScript.Run(ctx, s.rdb, []string{s.eventBase(id)}, args...).Int64()
	if err != nil {
		return nil, s.failWrite(ctx, err)
	}
	e.CreatedAt = micros(created)
	e.UpdatedAt = e.CreatedAt
	return e, nil
}

// normalRoom copies a waiting room with its time as stored (UTC, µs).
func normalRoom(w *ticketrush.WaitingRoom) *ticketrush.WaitingRoom {
	c := *w
	if w.PrequeueOpensAt != nil {
		t := w.PrequeueOpensAt.UTC().Truncate(time.Microsecond)
		c.PrequeueOpensAt = &t
	}
	return &c
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// roomArgs are the hash values wr, wr_apm, wr_max_active, wr_pass,
// wr_preopen, wr_bits, wr_paused of a waiting room (nil: none).
func roomArgs(w *ticketrush.WaitingRoom) []any {
	if w == nil {
		return []any{"0", "0", "0", "0", "", "0", "0"}
	}
	pre := ""
	if w.PrequeueOpensAt != nil {
		pre = strconv.FormatInt(w.PrequeueOpensAt.UnixMicro(), 10)
	}
	return []any{"1", w.AdmitPerMinute, w.MaxActive, w.PassSeconds, pre, w.ChallengeBits, flag(w.Paused)}
}

// UpdateEvent applies u to the event in one script, and returns the event
// as stored. Removing the waiting room deletes its queue in the same
// script.
func (s *Store) UpdateEvent(ctx context.Context, id int64, u ticketrush.EventUpdate) (*ticketrush.Event, error) {
	if err := u.Validate(); err != nil {
		return nil, err
	}
	if id < 1 || id > maxEvent {
		return nil, errEventNotFound()
	}
	var set []any
	if u.Name != nil {
		set = append(set, "name", *u.Name)
	}
	if u.Hidden != nil {
		set = append(set, "hidden", flag(*u.Hidden))
	}
	if u.SaleClosed != nil {
		set = append(set, "sale_closed", flag(*u.SaleClosed))
	}
	if u.MaxPerOrder != nil {
		set = append(set, "max_per_order", *u.MaxPerOrder)
	}
	drop := ""
	if u.SetWaitingRoom {
		var w *ticketrush.WaitingRoom
		if u.WaitingRoom != nil {
			w = normalRoom(u.WaitingRoom)
		} else {
			drop = "1"
		}
		v := roomArgs(w)
		for i, f := range []string{"wr", "wr_apm", "wr_max_active", "wr_pass", "wr_preopen", "wr_bits", "wr_paused"} {
			set = append(set, f, v[i])
		}
	}
	args := append([]any{s.clockArg(), drop, len(set) / 2}, set...)
	for _, f := range eventFields {
		args = append(args, f)
	}
	ctx = writing(ctx)
	out, err := updateEventScript.Run(ctx, s.rdb, s.eventKeys(id, "", 0), args...).Slice()
	if err != nil {
		return nil, s.failWrite(ctx, err)
	}
	if len(out) == 0 || out[0] != "ok" {
		return nil, errEventNotFound()
	}
	e, err := scanEvent(id, out[1:])
	if err != nil {
		return nil, err
	}
	if e == nil {
		return nil, errEventNotFound()
	}
	return e, nil
}

// DeleteEvent removes an event that has never had a reservation, with its
// queue, then drops it from the index (another slot: a crash in between
// leaves an id in the index that every reader skips).
func (s *Store) DeleteEvent(ctx context.Context, id int64) error {
	if id < 1 || id > maxEvent {
		return errEventNotFound()
	}
	ctx = writing(ctx)
	answer, err := deleteEventScript.Run(ctx, s.rdb, s.eventKeys(id, s.newRun(ctx), 0)).Text()
	if err != nil {
		return s.failWrite(ctx, err)
	}
	if answer != "ok" {
		return outcome(answer)
	}
	return s.failWrite(ctx, s.rdb.ZRem(ctx, s.indexKey(), id).Err())
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
	bad := errors.New("redis: bad event hash " + strconv.FormatInt(id, 10))
	num := func(i int, def int64) (int64, bool) {
		if str[i] == "" {
			return def, def >= 0
		}
		x, err := strconv.ParseInt(str[i], 10, 64)
		return x, err == nil
	}
	var n [6]int64
	for i, f := range []int{1, 2, 3, 4, 6, 7} {
		x, ok := num(f, -1)
		if !ok {
			return nil, bad
		}
		n[i] = x
	}
	// Events written before these fields existed read as the defaults.
	mpo, ok := num(8, ticketrush.DefaultMaxPerOrder)
	if !ok {
		return nil, bad
	}
	e := &ticketrush.Event{
		ID:             id,
		Name:           str[0],
		TicketQuantity: n[0],
		Capacity:       n[1],
		HoldSeconds:    n[2],
		MaxPerVisitor:  n[3],
		MaxPerOrder:    mpo,
		Hidden:         str[9] == "1",
		SaleClosed:     str[10] == "1",
		CreatedAt:      micros(n[4]),
		UpdatedAt:      micros(n[5]),
	}
	if str[5] != "" {
		x, ok := num(5, -1)
		if !ok {
			return nil, bad
		}
		t := micros(x)
		e.SaleStartsAt = &t
	}
	if str[11] == "1" {
		var w [4]int64
		for i, f := range []int{12, 13, 14, 16} {
			x, ok := num(f, -1)
			if !ok {
				return nil, bad
			}
			w[i] = x
		}
		e.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: w[0], MaxActive: w[1], PassSeconds: w[2],
			ChallengeBits: w[3], Paused: str[17] == "1"}
		if str[15] != "" {
			x, ok := num(15, -1)
			if !ok {
				return nil, bad
			}
			t := micros(x)
			e.WaitingRoom.PrequeueOpensAt = &t
		}
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
