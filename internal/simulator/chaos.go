package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"time"
)

// Chaos is trouble for the chaos suite (hack/chaos) on top of Faults, on the same /api/... and
// /cloud/... requests. Unlike a Fault, both of its answers are given after the request has been
// applied: a refresh has rotated, a reset has changed the password, a code has been redeemed.
type Chaos struct {
	// DropRate is the share (0..1) of requests whose connection is reset once the request has been
	// applied, with nothing answered: the client cannot tell whether it took effect.
	DropRate float64
	// HoldRate is the share of requests whose answer is held for Hold once applied (a client whose
	// timeout is shorter sees a timeout; a manager killed meanwhile never sees the answer).
	HoldRate float64
	Hold     time.Duration
}

type chaosJSON struct {
	DropRate float64 `json:"dropRate"`
	HoldRate float64 `json:"holdRate"`
	Hold     string  `json:"hold"`
}

// MarshalJSON renders Hold as a Go duration string.
func (c Chaos) MarshalJSON() ([]byte, error) {
	return json.Marshal(chaosJSON{DropRate: c.DropRate, HoldRate: c.HoldRate, Hold: c.Hold.String()})
}

// UnmarshalJSON accepts the MarshalJSON form.
func (c *Chaos) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var j chaosJSON
	if err := dec.Decode(&j); err != nil {
		return err
	}
	d, err := parseDuration("hold", j.Hold)
	if err != nil {
		return err
	}
	*c = Chaos{DropRate: j.DropRate, HoldRate: j.HoldRate, Hold: d}
	return nil
}

// Validate reports rates outside [0,1] (or together above 1) and a negative Hold.
func (c Chaos) Validate() error {
	var errs []error
	for name, r := range map[string]float64{"dropRate": c.DropRate, "holdRate": c.HoldRate} {
		if math.IsNaN(r) || r < 0 || r > 1 {
			errs = append(errs, fmt.Errorf("%s %v not in [0,1]", name, r))
		}
	}
	if c.DropRate+c.HoldRate > 1 {
		errs = append(errs, errors.New("dropRate + holdRate above 1"))
	}
	if c.Hold < 0 {
		errs = append(errs, fmt.Errorf("hold %v is negative", c.Hold))
	}
	return errors.Join(errs...)
}

// SetChaos replaces the chaos in force (the zero value: none).
func (s *Server) SetChaos(c Chaos) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.chaos = c
}

// serveChaos answers r with a chaos answer when the roll says so, and reports whether it did. A drop is
// recorded in the ledger (obs) before the connection is reset: the client may read the ledger, or call
// again, the moment it sees the reset.
func (s *Server) serveChaos(rec *statusRecorder, r *http.Request, obs *observation) bool {
	s.mu.Lock()
	c := s.chaos
	s.mu.Unlock()
	if c.DropRate <= 0 && c.HoldRate <= 0 {
		return false
	}
	roll := rand.Float64()
	switch {
	case roll < c.DropRate:
		held := &heldResponse{header: http.Header{}}
		s.mux.ServeHTTP(held, r)
		if rec.body != nil {
			rec.body.Write(held.body.Bytes()) // the ledger learns what was issued and never delivered
		}
		rec.chaos, rec.dropped = "drop", true
		s.ledgerEnd(obs, rec)
		conn, _, err := http.NewResponseController(rec.ResponseWriter).Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a reset, not an orderly close
		}
		_ = conn.Close()
		return true
	case roll < c.DropRate+c.HoldRate:
		rec.chaos = "hold"
		s.respondLate(rec, r, c.Hold, s.mux.ServeHTTP)
		return true
	}
	return false
}
