package simulator

import "strconv"

// Stats counts requests by route and status.
type Stats struct {
	// Requests maps "<METHOD> <route path>" (e.g. "POST /api/ts/v1/oauth2/token")
	// to status code (as a decimal string, e.g. "200") to count. Faulted and
	// failed requests are included; admin requests are not. Requests to no
	// known route count under "<METHOD> /api/" or "<METHOD> /". A client that
	// gave up during injected latency counts as status "499".
	Requests map[string]map[string]int `json:"requests"`
}

// Count returns how many requests to route were answered with status.
func (s Stats) Count(route string, status int) int {
	return s.Requests[route][strconv.Itoa(status)]
}

// Total returns how many requests to route were seen, whatever the status.
func (s Stats) Total(route string) int {
	n := 0
	for _, c := range s.Requests[route] {
		n += c
	}
	return n
}

// Stats returns a snapshot of the request counts; the caller owns it.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := Stats{Requests: make(map[string]map[string]int, len(s.stats))}
	for route, byStatus := range s.stats {
		m := make(map[string]int, len(byStatus))
		for status, n := range byStatus {
			m[strconv.Itoa(status)] = n
		}
		out.Requests[route] = m
	}
	return out
}

// ResetStats forgets all request counts and the Verizon Cloud event counts
// (CloudStats); state such as CloudStats.LiveRefreshTokens is kept.
func (s *Server) ResetStats() {
	s.mu.Lock()
	s.stats = map[string]map[int]int{}
	s.mu.Unlock()
	s.cloud.resetCounts()
}

func (s *Server) count(route string, status int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.stats[route]
	if m == nil {
		m = map[int]int{}
		s.stats[route] = m
	}
	m[status]++
}
