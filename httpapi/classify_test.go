package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"testing"

	"github.com/ticketrush/ticketrush"
)

// TestClassifyInDoubt: an outcome_unknown error keeps its code however it
// is wrapped, although its cause is a context error (which alone means
// unavailable).
func TestClassifyInDoubt(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{ticketrush.OutcomeUnknown(context.DeadlineExceeded), ticketrush.EOutcomeUnknown},
		{fmt.Errorf("reserve: %w", ticketrush.OutcomeUnknown(context.Canceled)), ticketrush.EOutcomeUnknown},
		{ticketrush.Unavailable(context.DeadlineExceeded), ticketrush.EUnavailable},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), ticketrush.EUnavailable},
	} {
		code, msg := classify(tc.err)
		if code != tc.want || msg != ticketrush.ErrorMessage(tc.err) && tc.want == ticketrush.EOutcomeUnknown {
			t.Errorf("classify(%v) = %s %q, want %s", tc.err, code, msg, tc.want)
		}
		if StatusOf(code) != http.StatusServiceUnavailable {
			t.Errorf("%s: status %d, want 503", code, StatusOf(code))
		}
	}
}
