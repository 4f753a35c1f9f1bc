package client_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ticketrush/ticketrush/api/client"
	"github.com/ticketrush/ticketrush/httpapi"
	"github.com/ticketrush/ticketrush/sqlite"
)

const adminToken = "client-test-admin-token"

// newServer starts the HTTP API on a fresh SQLite database, over real
// HTTP on loopback.
func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	s, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "client.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(httpapi.Config{Store: s, AdminToken: adminToken}))
	t.Cleanup(srv.Close)
	return srv
}

func asAdmin(_ context.Context, req *http.Request) error {
	req.Header.Set("Authorization", "Bearer "+adminToken)
	return nil
}

// TestSeedFlow runs the original's flow through the generated client: the
// organiser creates the demo event, a buyer lists the events, reserves
// (getting a visitor token), reads the hold back and purchases it, and the
// errors a buyer meets come back as the spec's error objects.
func TestSeedFlow(t *testing.T) {
	srv := newServer(t)
	ctx := t.Context()
	c, err := client.NewClientWithResponses(srv.URL, client.WithHTTPClient(srv.Client()))
	if err != nil {
		t.Fatal(err)
	}

	created, err := c.CreateEventWithResponse(ctx, client.CreateEventRequest{Name: "Örnek Etkinlik", TicketQuantity: 2000}, asAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if created.JSON201 == nil {
		t.Fatalf("create event: %d %s", created.StatusCode(), created.Body)
	}
	ev := created.JSON201.Data
	if ev.Capacity != 2000 || ev.TicketQuantity != 2000 || ev.SaleStartsAt != nil {
		t.Errorf("created %+v", ev)
	}

	list, err := c.ListEventsWithResponse(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if list.JSON200 == nil || len(list.JSON200.Data) != 1 || list.JSON200.Data[0].Id != ev.Id {
		t.Fatalf("list events: %d %s", list.StatusCode(), list.Body)
	}

	// The first reserve has no Visitor-Token: the server makes one.
	res, err := c.ReserveWithResponse(ctx, &client.ReserveParams{}, client.ReserveRequest{EventId: ev.Id, Amount: 3})
	if err != nil {
		t.Fatal(err)
	}
	if res.JSON201 == nil {
		t.Fatalf("reserve: %d %s", res.StatusCode(), res.Body)
	}
	hold := res.JSON201.Data
	token := res.HTTPResponse.Header.Get("Visitor-Token")
	if token == "" || token != hold.UserUid || hold.Status != client.ReservationStatusReserved || hold.Amount != 3 {
		t.Fatalf("reserve: token %q, hold %+v", token, hold)
	}

	got, err := c.GetReservationWithResponse(ctx, hold.Id, &client.GetReservationParams{VisitorToken: token})
	if err != nil {
		t.Fatal(err)
	}
	if got.JSON200 == nil || got.JSON200.Data.Id != hold.Id {
		t.Fatalf("get reservation: %d %s", got.StatusCode(), got.Body)
	}

	bought, err := c.PurchaseWithResponse(ctx, &client.PurchaseParams{VisitorToken: token}, client.PurchaseRequest{ReservationId: hold.Id})
	if err != nil {
		t.Fatal(err)
	}
	if bought.JSON200 == nil || bought.JSON200.Data.Status != client.ReservationStatusPurchased {
		t.Fatalf("purchase: %d %s", bought.StatusCode(), bought.Body)
	}

	// Errors: each comes back typed, code and message included.
	missing, err := c.GetReservationWithResponse(ctx, hold.Id+1000, &client.GetReservationParams{VisitorToken: token})
	if err != nil {
		t.Fatal(err)
	}
	if missing.JSON404 == nil || missing.JSON404.Error.Code != client.ErrorErrorCodeReservationNotFound || missing.JSON404.Error.Message == "" {
		t.Errorf("unknown reservation: %d %s", missing.StatusCode(), missing.Body)
	}
	again, err := c.PurchaseWithResponse(ctx, &client.PurchaseParams{VisitorToken: token}, client.PurchaseRequest{ReservationId: hold.Id})
	if err != nil {
		t.Fatal(err)
	}
	if again.JSON409 == nil || again.JSON409.Error.Code != client.ErrorErrorCodeReservationAlreadyPurchased {
		t.Errorf("second purchase: %d %s", again.StatusCode(), again.Body)
	}
	bad, err := c.ReserveWithResponse(ctx, &client.ReserveParams{VisitorToken: &token}, client.ReserveRequest{EventId: ev.Id, Amount: 0})
	if err != nil {
		t.Fatal(err)
	}
	if bad.JSON422 == nil || bad.JSON422.Error.Code != client.ErrorErrorCodeValidationFailed || bad.JSON422.Error.Fields == nil || (*bad.JSON422.Error.Fields)["amount"] == "" {
		t.Errorf("amount 0: %d %s", bad.StatusCode(), bad.Body)
	}
	noEvent, err := c.GetEventWithResponse(ctx, ev.Id+1000)
	if err != nil {
		t.Fatal(err)
	}
	if noEvent.JSON404 == nil || noEvent.JSON404.Error.Code != client.ErrorErrorCodeEventNotFound {
		t.Errorf("unknown event: %d %s", noEvent.StatusCode(), noEvent.Body)
	}
	anon, err := c.EventStatsWithResponse(ctx, ev.Id)
	if err != nil {
		t.Fatal(err)
	}
	if anon.JSON401 == nil || anon.JSON401.Error.Code != client.ErrorErrorCodeUnauthorized {
		t.Errorf("stats without the admin token: %d %s", anon.StatusCode(), anon.Body)
	}

	stats, err := c.EventStatsWithResponse(ctx, ev.Id, asAdmin)
	if err != nil {
		t.Fatal(err)
	}
	if stats.JSON200 == nil {
		t.Fatalf("stats: %d %s", stats.StatusCode(), stats.Body)
	}
	if st := stats.JSON200.Data; st.Purchased != 3 || st.Held != 0 || st.Available != 1997 || st.Capacity != st.Available+st.Held+st.Purchased {
		t.Errorf("stats %+v", st)
	}
}

// TestGeneratedCodeIsCurrent runs the go:generate line of generate.go into
// a temporary file and compares: the committed client must be what the
// spec generates today.
func TestGeneratedCodeIsCurrent(t *testing.T) {
	src, err := os.ReadFile("generate.go")
	if err != nil {
		t.Fatal(err)
	}
	var args []string
	for line := range strings.Lines(string(src)) {
		if rest, ok := strings.CutPrefix(line, "//go:generate "); ok {
			args = strings.Fields(rest)
		}
	}
	if len(args) == 0 || args[0] != "go" {
		t.Fatal("no go:generate line running go in generate.go")
	}
	// The same command, with a copy of the configuration that writes
	// elsewhere.
	dir := t.TempDir()
	out := filepath.Join(dir, "client.gen.go")
	cfg, err := os.ReadFile("config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(cfg, []byte("\noutput: client.gen.go\n")) {
		t.Fatal("config.yaml does not write client.gen.go")
	}
	cfg = bytes.Replace(cfg, []byte("\noutput: client.gen.go\n"), []byte("\noutput: "+out+"\n"), 1)
	tmpCfg := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(tmpCfg, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	i := slices.Index(args, "config.yaml")
	if i < 0 {
		t.Fatal("the go:generate line does not name config.yaml")
	}
	args[i] = tmpCfg
	cmd := exec.CommandContext(t.Context(), "go", args[1:]...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, &stderr)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("client.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, want) {
		t.Error("client.gen.go is not what api/openapi.yaml generates: run go generate ./api/client/ and commit the result")
	}
}
