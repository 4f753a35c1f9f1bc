package bench

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/batch"
	"github.com/ticketrush/ticketrush/httpapi"
)

// testServe is the API as serve assembles it, without the web pages and
// the sweeper, which the bench does not exercise: enough to test the
// harness here, while the command's own tests run it on serve's server.
func testServe(ctx context.Context, s ticketrush.Store, _ string, ln net.Listener, set ServerSettings, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	var reserver ticketrush.Reserver = s
	var b *batch.Batcher
	var checkout *batch.Options
	if set.Strategy == "batch" {
		b = batch.New(s, batch.Options{MaxBatch: set.MaxBatch, MaxQueue: set.MaxQueue, Timeout: set.Timeout, Metrics: batch.NewMetrics(reg)})
		reserver = b
		checkout = &batch.Options{MaxBatch: set.MaxBatch, MaxQueue: set.MaxQueue, Timeout: set.Timeout}
	}
	api := httpapi.New(httpapi.Config{
		Store:       s,
		Reserver:    reserver,
		Checkout:    checkout,
		AdminToken:  set.AdminToken,
		DefaultHold: set.Hold,
		Timeout:     set.Timeout,
		Logger:      log,
		Registry:    reg,
	})
	srv := &http.Server{Handler: api}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	err := srv.Shutdown(context.Background())
	if b != nil {
		b.Close()
	}
	api.Close()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
