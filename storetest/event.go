package storetest

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

func testEvent(t *testing.T, s suite) {
	t.Run("CreateFirstEvent", func(t *testing.T) {
		// Several processes starting on one empty database: exactly one
		// creates the event, the others find it and create nothing.
		fresh := s.env(t)
		stores := []ticketrush.Store{fresh.store, fresh.openStore(t), fresh.openStore(t), fresh.openStore(t)}
		created := make([]*ticketrush.Event, len(stores))
		var wg sync.WaitGroup
		for i, st := range stores {
			wg.Go(func() {
				ev, err := st.CreateFirstEvent(t.Context(), concert(2000))
				if err != nil {
					t.Errorf("CreateFirstEvent: %v", err)
				}
				created[i] = ev
			})
		}
		wg.Wait()
		n := 0
		for _, ev := range created {
			if ev != nil {
				n++
			}
		}
		all, err := fresh.store.Events(t.Context())
		ok(t, "Events", err)
		if n != 1 || len(all) != 1 {
			t.Fatalf("%d processes created the first event and %d events exist, want 1 and 1", n, len(all))
		}
		again, err := fresh.store.CreateFirstEvent(t.Context(), concert(10))
		if err != nil || again != nil {
			t.Errorf("CreateFirstEvent with an event present = %+v, %v; want nil, nil", again, err)
		}
		_, err = fresh.store.CreateFirstEvent(t.Context(), ticketrush.NewEvent{})
		if n := len(all); n == 1 && ticketrush.ErrorCode(err) != ticketrush.EValidation && err != nil {
			t.Errorf("CreateFirstEvent of an invalid event: %v, want nil or %s", err, ticketrush.EValidation)
		}
	})
	e := s.env(t)
	t.Run("CreateEvent", func(t *testing.T) {
		t.Run("OK", func(t *testing.T) {
			// A sale start in another zone with nanoseconds comes back in
			// UTC, truncated to the microsecond.
			sale := time.Date(2025, 12, 1, 19, 30, 0, 123456789, time.FixedZone("TRT", 3*3600))
			ne := ticketrush.NewEvent{Name: "Örnek Etkinlik", TicketQuantity: 2000, HoldSeconds: 300, MaxPerVisitor: 6, SaleStartsAt: &sale}
			now := e.clock.Now()
			wantSale := sale.UTC().Truncate(time.Microsecond)
			ev := createEvent(t, e.store, ne)
			want := &ticketrush.Event{
				ID: ev.ID, Name: ne.Name, TicketQuantity: 2000, Capacity: 2000, HoldSeconds: 300,
				MaxPerVisitor: 6, SaleStartsAt: &wantSale, MaxPerOrder: ticketrush.DefaultMaxPerOrder,
				CreatedAt: now, UpdatedAt: now,
			}
			sameEvent(t, "CreateEvent", ev, want)

			got, err := e.store.Event(t.Context(), ev.ID)
			ok(t, "Event", err)
			sameEvent(t, "Event", got, want)

			all, err := e.store.Events(t.Context())
			ok(t, "Events", err)
			i := slices.IndexFunc(all, func(x *ticketrush.Event) bool { return x.ID == ev.ID })
			if i < 0 {
				t.Fatalf("Events does not list event %d", ev.ID)
			}
			sameEvent(t, "Events", all[i], want)
		})
		t.Run("NoLimits", func(t *testing.T) {
			now := e.clock.Now()
			ev := createEvent(t, e.store, concert(1))
			sameEvent(t, "CreateEvent", ev, &ticketrush.Event{
				ID: ev.ID, Name: "Örnek Etkinlik", TicketQuantity: 1, Capacity: 1, HoldSeconds: 300,
				MaxPerOrder: ticketrush.DefaultMaxPerOrder, CreatedAt: now, UpdatedAt: now,
			})
			got, err := e.store.Event(t.Context(), ev.ID)
			ok(t, "Event", err)
			sameEvent(t, "Event", got, ev)
		})
		t.Run("Boundaries", func(t *testing.T) {
			for _, ne := range []ticketrush.NewEvent{
				{Name: strings.Repeat("ş", ticketrush.MaxNameLength), TicketQuantity: ticketrush.MaxTicketQuantity,
					HoldSeconds: ticketrush.MaxHoldSeconds, MaxPerVisitor: ticketrush.MaxTicketQuantity},
				{Name: "x", TicketQuantity: 1, HoldSeconds: 1, MaxPerVisitor: 1, MaxPerOrder: 1},
				{Name: "y", TicketQuantity: 5, HoldSeconds: 60, MaxPerOrder: ticketrush.MaxAmount, Hidden: true,
					WaitingRoom: &ticketrush.WaitingRoom{AdmitPerMinute: ticketrush.MaxAdmitPerMinute,
						MaxActive: ticketrush.MaxTicketQuantity, PassSeconds: ticketrush.MaxHoldSeconds,
						ChallengeBits: ticketrush.MaxChallengeBits, Paused: true}},
				{Name: "z", TicketQuantity: 5, HoldSeconds: 60,
					WaitingRoom: &ticketrush.WaitingRoom{AdmitPerMinute: 1, PassSeconds: 1}},
			} {
				ev := createEvent(t, e.store, ne)
				got, err := e.store.Event(t.Context(), ev.ID)
				ok(t, "Event", err)
				sameEvent(t, "Event", got, ev)
				if got.Name != ne.Name || got.Capacity != ne.TicketQuantity || got.HoldSeconds != ne.HoldSeconds ||
					got.MaxPerVisitor != ne.MaxPerVisitor || got.MaxPerOrder != ne.OrderLimit() ||
					got.Hidden != ne.Hidden || !sameRoom(got.WaitingRoom, ne.WaitingRoom) {
					t.Errorf("Event = %s, created from %+v", fmtEvent(got), ne)
				}
			}
		})
		t.Run("ErrValidation", func(t *testing.T) {
			before, err := e.store.Events(t.Context())
			ok(t, "Events", err)
			good := concert(10)
			for _, tc := range []struct {
				name   string
				edit   func(*ticketrush.NewEvent)
				fields []string
			}{
				{"NameRequired", func(n *ticketrush.NewEvent) { n.Name = "" }, []string{"name"}},
				{"NameBlank", func(n *ticketrush.NewEvent) { n.Name = " \t " }, []string{"name"}},
				{"NameTooLong", func(n *ticketrush.NewEvent) { n.Name = strings.Repeat("ş", ticketrush.MaxNameLength+1) }, []string{"name"}},
				{"NameNotUTF8", func(n *ticketrush.NewEvent) { n.Name = "a\xffb" }, []string{"name"}},
				{"TicketQuantityZero", func(n *ticketrush.NewEvent) { n.TicketQuantity = 0 }, []string{"ticket_quantity"}},
				{"TicketQuantityNegative", func(n *ticketrush.NewEvent) { n.TicketQuantity = -5 }, []string{"ticket_quantity"}},
				{"TicketQuantityTooLarge", func(n *ticketrush.NewEvent) { n.TicketQuantity = ticketrush.MaxTicketQuantity + 1 }, []string{"ticket_quantity"}},
				{"HoldSecondsZero", func(n *ticketrush.NewEvent) { n.HoldSeconds = 0 }, []string{"hold_seconds"}},
				{"HoldSecondsTooLarge", func(n *ticketrush.NewEvent) { n.HoldSeconds = ticketrush.MaxHoldSeconds + 1 }, []string{"hold_seconds"}},
				{"MaxPerVisitorNegative", func(n *ticketrush.NewEvent) { n.MaxPerVisitor = -1 }, []string{"max_per_visitor"}},
				{"MaxPerOrderNegative", func(n *ticketrush.NewEvent) { n.MaxPerOrder = -1 }, []string{"max_per_order"}},
				{"MaxPerOrderTooLarge", func(n *ticketrush.NewEvent) { n.MaxPerOrder = ticketrush.MaxAmount + 1 }, []string{"max_per_order"}},
				{"WaitingRoomEvery", func(n *ticketrush.NewEvent) {
					n.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: 0, MaxActive: -1, PassSeconds: 0, ChallengeBits: 25}
				}, []string{"waiting_room.admit_per_minute", "waiting_room.max_active", "waiting_room.pass_seconds", "waiting_room.challenge_bits"}},
				{"WaitingRoomTooFast", func(n *ticketrush.NewEvent) {
					n.WaitingRoom = &ticketrush.WaitingRoom{AdmitPerMinute: ticketrush.MaxAdmitPerMinute + 1, PassSeconds: 300}
				}, []string{"waiting_room.admit_per_minute"}},
				{"Every", func(n *ticketrush.NewEvent) { *n = ticketrush.NewEvent{MaxPerVisitor: -1} },
					[]string{"name", "ticket_quantity", "hold_seconds", "max_per_visitor"}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					ne := good
					tc.edit(&ne)
					ev, err := e.store.CreateEvent(t.Context(), ne)
					if ticketrush.ErrorCode(err) != ticketrush.EValidation {
						t.Fatalf("CreateEvent(%+v) = %+v, %v; want %s", ne, ev, err, ticketrush.EValidation)
					}
					if ev != nil {
						t.Errorf("CreateEvent returned %+v along with %v", ev, err)
					}
					var de *ticketrush.Error
					if !errors.As(err, &de) {
						t.Fatalf("error %v is not a *ticketrush.Error", err)
					}
					for _, f := range tc.fields {
						if de.Fields[f] == "" {
							t.Errorf("fields %v lack %q", de.Fields, f)
						}
					}
					if len(de.Fields) != len(tc.fields) {
						t.Errorf("fields %v, want exactly %v", de.Fields, tc.fields)
					}
				})
			}
			after, err := e.store.Events(t.Context())
			ok(t, "Events", err)
			if len(after) != len(before) {
				t.Errorf("invalid events changed the number of events from %d to %d", len(before), len(after))
			}
		})
	})

	t.Run("Events", func(t *testing.T) {
		// A database of its own: Events lists them all.
		e := s.env(t)
		t.Run("Empty", func(t *testing.T) {
			all, err := e.store.Events(t.Context())
			ok(t, "Events", err)
			if len(all) != 0 {
				t.Errorf("Events on an empty database = %d events", len(all))
			}
		})
		t.Run("NewestFirst", func(t *testing.T) {
			var made []*ticketrush.Event
			for i, name := range []string{"A", "B", "C", "D"} {
				if i%2 == 1 {
					e.clock.Advance(time.Second)
				}
				ev := createEvent(t, e.store, ticketrush.NewEvent{Name: name, TicketQuantity: int64(10 + i), HoldSeconds: 60})
				made = append(made, ev)
			}
			// Events made in the same microsecond are ordered by id.
			slices.SortFunc(made, func(a, b *ticketrush.Event) int {
				if c := b.CreatedAt.Compare(a.CreatedAt); c != 0 {
					return c
				}
				return cmp.Compare(b.ID, a.ID)
			})
			all, err := e.store.Events(t.Context())
			ok(t, "Events", err)
			if len(all) != len(made) {
				t.Fatalf("Events = %d events, want %d", len(all), len(made))
			}
			for i := range made {
				sameEvent(t, "Events["+itoa(int64(i))+"]", all[i], made[i])
			}
		})
	})

	t.Run("ErrEventNotFound", func(t *testing.T) {
		ev := createEvent(t, e.store, concert(5))
		for _, id := range []int64{ev.ID + 1, 1 << 40, 0, -1} {
			got, err := e.store.Event(t.Context(), id)
			wantCode(t, "Event("+itoa(id)+")", err, ticketrush.EEventNotFound)
			if got != nil {
				t.Errorf("Event(%d) returned %+v along with %v", id, got, err)
			}
			st, err := e.store.Stats(t.Context(), id)
			wantCode(t, "Stats("+itoa(id)+")", err, ticketrush.EEventNotFound)
			if st != nil {
				t.Errorf("Stats(%d) returned %+v along with %v", id, st, err)
			}
		}
	})
}
