package sqlite

import (
	"testing"

	"github.com/ticketrush/ticketrush"
)

func TestCreateFirstEvent(t *testing.T) {
	path, c := newDB(t)
	s := open(t, path, c)
	if _, err := s.CreateFirstEvent(t.Context(), ticketrush.NewEvent{Name: "x"}); ticketrush.ErrorCode(err) != ticketrush.EValidation {
		t.Fatalf("invalid event: %v", err)
	}
	e, err := s.CreateFirstEvent(t.Context(), concert(2000))
	if err != nil || e == nil || e.ID != 1 || e.MaxPerOrder != ticketrush.DefaultMaxPerOrder {
		t.Fatalf("first event on an empty database: %+v, %v", e, err)
	}
	got, err := s.Event(t.Context(), e.ID)
	if err != nil || got.Name != e.Name || got.Capacity != 2000 || !got.CreatedAt.Equal(e.CreatedAt) {
		t.Fatalf("read back %+v, %v", got, err)
	}
	// Another store (another node) finds the event and creates none.
	again, err := open(t, path, c).CreateFirstEvent(t.Context(), concert(2000))
	if err != nil || again != nil {
		t.Fatalf("second CreateFirstEvent: %+v, %v; want nothing created", again, err)
	}
	if events, err := s.Events(t.Context()); err != nil || len(events) != 1 {
		t.Fatalf("%d events, %v", len(events), err)
	}
}
