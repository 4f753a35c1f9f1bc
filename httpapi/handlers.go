package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"github.com/ticketrush/ticketrush"
	"github.com/ticketrush/ticketrush/api"
)

// Request and response headers of the API.
const (
	headerVisitorToken   = "Visitor-Token"
	headerIdempotencyKey = "Idempotency-Key"
)

// reserve holds tickets. Everything a client controls is checked before
// the store is touched, so bad input can change nothing.
func (s *Server) reserve(w http.ResponseWriter, r *http.Request) {
	res, err := s.doReserve(w, r)
	s.metrics.reserved(err)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set(headerVisitorToken, res.UserUID)
	wire := newReservation(res)
	writeBody(w, http.StatusCreated, appendReservation(make([]byte, 0, 256), &wire))
}

func (s *Server) doReserve(w http.ResponseWriter, r *http.Request) (*ticketrush.Reservation, error) {
	token, err := visitorToken(r, false)
	if err != nil {
		return nil, err
	}
	key, err := idempotencyKey(r)
	if err != nil {
		return nil, err
	}
	if key != "" && token == "" {
		// A key is scoped to its visitor: without a token each attempt
		// would be a new visitor, and a retry would hold tickets twice.
		return nil, errKeyWithoutToken
	}
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	eventID, amount, err := decodeReserve(body)
	if err != nil {
		return nil, err
	}
	if token == "" {
		token = uuid.NewString()
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	admission, err := s.admission(ctx, r, eventID, token, key)
	if err != nil {
		return nil, err
	}
	return s.reserver.Reserve(ctx, ticketrush.ReserveRequest{
		EventID:        eventID,
		Amount:         amount,
		VisitorToken:   token,
		IdempotencyKey: key,
		Admission:      admission,
	})
}

func (s *Server) purchase(w http.ResponseWriter, r *http.Request) {
	token, err := visitorToken(r, true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, err := readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := decodePurchase(body)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	res, err := s.settler.Purchase(ctx, id, token)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Envelope[Reservation]{Data: newReservation(res)})
}

func (s *Server) getReservation(w http.ResponseWriter, r *http.Request) {
	s.onReservation(w, r, s.store.Reservation)
}

func (s *Server) cancelReservation(w http.ResponseWriter, r *http.Request) {
	s.onReservation(w, r, s.settler.Cancel)
}

// onReservation runs op on the reservation named in the path, for the
// visitor of the request.
func (s *Server) onReservation(w http.ResponseWriter, r *http.Request,
	op func(ctx context.Context, id int64, visitor string) (*ticketrush.Reservation, error)) {
	token, err := visitorToken(r, true)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	res, err := op(ctx, id, token)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Envelope[Reservation]{Data: newReservation(res)})
}

// admin guards h with the admin token.
func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !s.adminSet {
			// Say what is wrong: no token could ever work here, and an
			// operator reading 401 would go looking for a typo.
			s.writeError(w, r, errAdminDisabled)
			return
		}
		if !s.authorized(r) {
			s.writeError(w, r, ticketrush.Errorf(ticketrush.EUnauthorized, "A valid admin token is required."))
			return
		}
		h(w, r)
	}
}

var errAdminDisabled = ticketrush.Errorf(ticketrush.EAdminDisabled,
	"Admin is switched off on this server: no admin token is configured. Start the server with --admin-token (or TICKETRUSH_ADMIN_TOKEN) to enable it.")

// authorized reports whether r carries the admin token as a bearer token.
// Comparing hashes in constant time reveals neither the token nor its
// length to a client timing its guesses.
func (s *Server) authorized(r *http.Request) bool {
	v := r.Header.Values("Authorization")
	if !s.adminSet || len(v) != 1 {
		return false
	}
	scheme, token, ok := strings.Cut(v[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], s.adminHash[:]) == 1
}

func (s *Server) createEvent(w http.ResponseWriter, r *http.Request) {
	body, err := readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ne, err := decodeCreateEvent(body, s.defaultHold)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	e, err := s.store.CreateEvent(ctx, ne)
	s.events.invalidate()
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, Envelope[Event]{Data: newAdminEvent(e)})
}

func (s *Server) eventStats(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := s.ctx(r)
	defer cancel()
	st, err := s.store.Stats(ctx, id)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	out := newStats(st)
	if out.Queue, err = s.queueFigures(ctx, id); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Envelope[Stats]{Data: out})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, Status{Status: "ok"})
}

// readyz reports whether the database answers within readyTimeout.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		if ticketrush.ErrorCode(err) != ticketrush.EUnavailable {
			err = ticketrush.Unavailable(err)
		}
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, Status{Status: "ok"})
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Length", strconv.Itoa(len(api.OpenAPI)))
	w.WriteHeader(http.StatusOK)
	w.Write(api.OpenAPI)
}

// pathID parses the {id} path segment.
func pathID(r *http.Request) (int64, error) {
	return ticketrush.ParseID(r.PathValue("id"))
}

// visitorToken reads the Visitor-Token header in canonical lower case. ""
// without an error means absent and not required. Two headers are refused:
// a proxy and this server could each pick a different one.
func visitorToken(r *http.Request, required bool) (string, error) {
	v := r.Header.Values(headerVisitorToken)
	switch {
	case len(v) > 1:
		return "", ticketrush.Errorf(ticketrush.EInvalidVisitorToken, "Send one Visitor-Token header.")
	case (len(v) == 0 || v[0] == "") && !required:
		return "", nil
	case len(v) == 0:
		return ticketrush.ParseVisitorToken("")
	}
	return ticketrush.ParseVisitorToken(v[0])
}

// errKeyWithoutToken refuses an Idempotency-Key sent without a
// Visitor-Token: it could never make a retry safe.
var errKeyWithoutToken = ticketrush.Errorf(ticketrush.EVisitorTokenRequired,
	"An Idempotency-Key needs a Visitor-Token: keys belong to a visitor, and without one a retry would create a second visitor and hold tickets twice. Create a token (any UUID), keep it, and send it with the key.")

// idempotencyKey reads the optional Idempotency-Key header.
func idempotencyKey(r *http.Request) (string, error) {
	v := r.Header.Values(headerIdempotencyKey)
	switch len(v) {
	case 0:
		return "", nil
	case 1:
		if err := ticketrush.ValidateIdempotencyKey(v[0]); err != nil {
			return "", err
		}
		return v[0], nil
	}
	v2 := ticketrush.ValidationError{}
	v2.Add(headerIdempotencyKey, "must be sent once")
	return "", v2.Err()
}
