package batch

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/ticketrush/ticketrush"
)

// gate is a commit that blocks until released, so a test can build a
// queue behind a running batch.
type gate struct {
	mu      sync.Mutex
	batches [][]int
	started chan struct{}
	release chan struct{}
	err     error
}

func newGate() *gate {
	return &gate{started: make(chan struct{}, 100), release: make(chan struct{})}
}

func (g *gate) commit(ctx context.Context, key int64, reqs []int) ([]int, error) {
	g.mu.Lock()
	g.batches = append(g.batches, append([]int(nil), reqs...))
	g.mu.Unlock()
	g.started <- struct{}{}
	<-g.release
	if g.err != nil {
		return nil, g.err
	}
	out := make([]int, len(reqs))
	for i, r := range reqs {
		out[i] = r * 10
	}
	return out, nil
}

func TestGroupCommitsQueuedRequestsTogether(t *testing.T) {
	g := newGate()
	grp := NewGroup(g.commit, Options{})
	defer grp.Close()
	results := make(chan [2]int, 10)
	do := func(n int) {
		res, err := grp.Do(context.Background(), 1, n)
		if err != nil {
			t.Error(err)
		}
		results <- [2]int{n, res}
	}
	go do(0)
	<-g.started // the first batch is running: the rest queue behind it
	for n := 1; n <= 5; n++ {
		go do(n)
	}
	for grp.Queued() < 5 {
		time.Sleep(time.Millisecond)
	}
	select {
	case r := <-results:
		t.Fatalf("answered %v before its commit", r)
	default:
	}
	g.release <- struct{}{}
	<-g.started
	close(g.release)
	for range 6 {
		r := <-results
		if r[1] != r[0]*10 {
			t.Errorf("request %d got %d", r[0], r[1])
		}
	}
	if len(g.batches) != 2 || len(g.batches[1]) != 5 {
		t.Errorf("batches %v, want [0] then the five queued behind it", g.batches)
	}
}

func TestGroupOverloadedAndFailure(t *testing.T) {
	g := newGate()
	g.err = errors.New("commit failed")
	grp := NewGroup(g.commit, Options{MaxQueue: 2})
	defer grp.Close()
	errs := make(chan error, 10)
	go func() { _, err := grp.Do(context.Background(), 1, 0); errs <- err }()
	<-g.started
	for n := 1; n <= 2; n++ {
		go func() { _, err := grp.Do(context.Background(), 1, n); errs <- err }()
	}
	for grp.Queued() < 2 {
		time.Sleep(time.Millisecond)
	}
	if _, err := grp.Do(context.Background(), 1, 3); ticketrush.ErrorCode(err) != ticketrush.EOverloaded {
		t.Errorf("beyond MaxQueue: %v, want %s", err, ticketrush.EOverloaded)
	}
	// Another key has its own queue.
	go func() { _, err := grp.Do(context.Background(), 2, 9); errs <- err }()
	close(g.release)
	for range 4 {
		if err := <-errs; err == nil || err.Error() != "commit failed" {
			t.Errorf("err = %v, want the commit's", err)
		}
	}
}

func TestGroupDropsAbandonedRequests(t *testing.T) {
	g := newGate()
	grp := NewGroup(g.commit, Options{})
	defer grp.Close()
	done := make(chan struct{})
	go func() { grp.Do(context.Background(), 1, 0); close(done) }()
	<-g.started
	ctx, cancel := context.WithCancel(context.Background())
	abandoned := make(chan error, 1)
	go func() { _, err := grp.Do(ctx, 1, 1); abandoned <- err }()
	for grp.Queued() < 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-abandoned; ticketrush.ErrorCode(err) != ticketrush.EUnavailable {
		t.Errorf("abandoned: %v", err)
	}
	close(g.release)
	<-done
	grp.Close()
	if len(g.batches) != 1 {
		t.Errorf("batches %v: the abandoned request was committed", g.batches)
	}
}
