package httpapi

import (
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// routes registers every route of the API. Paths and methods here, the
// handlers in handlers.go, the contract in api/openapi.yaml.
func (s *Server) routes() {
	s.handle("GET /api/events", s.listEvents)
	s.handle("GET /api/events/{id}", s.getEvent)
	s.handle("POST /api/reserve", s.reserve)
	s.handle("POST /api/purchase", s.purchase)
	s.handle("GET /api/reservations/{id}", s.getReservation)
	s.handle("DELETE /api/reservations/{id}", s.cancelReservation)

	s.handle("POST /api/admin/events", s.admin(s.createEvent))
	s.handle("GET /api/admin/events/{id}/stats", s.admin(s.eventStats))
	s.handle("GET /api/admin/events", s.admin(s.listAdminEvents))
	s.handle("GET /api/admin/events/{id}", s.admin(s.getAdminEvent))
	s.handle("PATCH /api/admin/events/{id}", s.admin(s.patchEvent))
	s.handle("DELETE /api/admin/events/{id}", s.admin(s.deleteEvent))

	s.handle("GET /api/events/{id}/queue/challenge", s.queueChallenge)
	s.handle("POST /api/events/{id}/queue", s.joinHandler())
	s.handle("GET /api/events/{id}/queue", s.getQueue)

	s.handle("GET /healthz", s.healthz)
	s.handle("GET /readyz", s.readyz)
	s.handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}).ServeHTTP)
	s.handle("GET /api/openapi.yaml", s.openAPI)

	if s.web != nil {
		for _, pattern := range s.webRoutes {
			s.handle(pattern, s.web.ServeHTTP)
		}
	}
}
