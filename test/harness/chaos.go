package harness

import (
	"net/http"

	"github.com/credops/thingspace-operator/internal/simulator"
)

// The chaos suite's controls on the simulator (hack/chaos): its ledger (SimConfig.Ledger), a batch
// liveness check of credentials, fault and chaos switches.

// Ledger is the simulator's record of calls and applied resets.
type Ledger = simulator.Ledger

// LedgerCall is one call the ledger recorded; LedgerReset one password reset it applied.
type (
	LedgerCall  = simulator.LedgerCall
	LedgerReset = simulator.LedgerReset
)

// Faults are the simulator's injected faults.
type Faults = simulator.Faults

// Chaos are the simulator's answers given after a request was applied (drop, hold).
type Chaos = simulator.Chaos

// Ledger returns the simulator's ledger (empty unless started with SimConfig.Ledger).
func (s *Sim) Ledger() (Ledger, error) {
	var l Ledger
	err := s.admin(http.MethodGet, "/admin/ledger", nil, http.StatusOK, &l)
	return l, err
}

// Live reports for each value whether the simulator would accept it now as a credential.
func (s *Sim) Live(values []string) ([]bool, error) {
	var out struct {
		Live []bool `json:"live"`
	}
	err := s.admin(http.MethodPost, "/admin/ledger/live", map[string][]string{"values": values}, http.StatusOK, &out)
	return out.Live, err
}

// SetFaults replaces the injected faults.
func (s *Sim) SetFaults(f Faults) error {
	return s.admin(http.MethodPut, "/admin/faults", f, http.StatusOK, nil)
}

// SetChaos replaces the drop and hold switches.
func (s *Sim) SetChaos(c Chaos) error {
	return s.admin(http.MethodPut, "/admin/chaos", c, http.StatusNoContent, nil)
}

// SetM2MRejectBearers makes the gateway refuse every Bearer on the M2M routes, or take them again.
func (s *Sim) SetM2MRejectBearers(on bool) error {
	return s.admin(http.MethodPut, "/admin/m2m/reject-bearers", map[string]bool{"reject": on}, http.StatusNoContent, nil)
}
