package simulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// Faults describes trouble injected on every /api/... (ThingSpace gateway) and
// /cloud/... (Verizon Cloud) request.
type Faults struct {
	// Rate is the share (0..1) of requests answered with a fault.
	Rate float64
	// Status of a faulted response: 503 or 429; 0 means 503.
	Status int
	// RetryAfter is sent as Retry-After in whole seconds, rounded up; 0 sends
	// no header.
	RetryAfter time.Duration
	// Latency is added before every /api/... and /cloud/... request is
	// handled, faulted or not.
	Latency time.Duration
}

// faultsJSON is the admin wire form: durations as Go duration strings.
type faultsJSON struct {
	Rate       float64 `json:"rate"`
	Status     int     `json:"status"`
	RetryAfter string  `json:"retryAfter"`
	Latency    string  `json:"latency"`
}

// MarshalJSON renders durations as Go duration strings, e.g.
// {"rate":1,"status":429,"retryAfter":"2s","latency":"0s"}.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		Rate:       f.Rate,
		Status:     f.Status,
		RetryAfter: f.RetryAfter.String(),
		Latency:    f.Latency.String(),
	})
}

// UnmarshalJSON accepts the MarshalJSON form. Missing fields are zero;
// unknown fields are an error so a typo does not silently disable a fault.
func (f *Faults) UnmarshalJSON(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var j faultsJSON
	if err := dec.Decode(&j); err != nil {
		return err
	}
	out := Faults{Rate: j.Rate, Status: j.Status}
	var err error
	if out.RetryAfter, err = parseDuration("retryAfter", j.RetryAfter); err != nil {
		return err
	}
	if out.Latency, err = parseDuration("latency", j.Latency); err != nil {
		return err
	}
	*f = out
	return nil
}

func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	return d, nil
}

// Validate reports values outside the documented ranges: Rate in [0,1],
// Status 0, 429 or 503 (the contract's throttling statuses), durations >= 0.
func (f Faults) Validate() error {
	var errs []error
	if math.IsNaN(f.Rate) || f.Rate < 0 || f.Rate > 1 {
		errs = append(errs, fmt.Errorf("rate %v not in [0,1]", f.Rate))
	}
	if f.Status != 0 && f.Status != http.StatusTooManyRequests && f.Status != http.StatusServiceUnavailable {
		errs = append(errs, fmt.Errorf("status %d not 429 or 503", f.Status))
	}
	if f.RetryAfter < 0 {
		errs = append(errs, fmt.Errorf("retryAfter %v is negative", f.RetryAfter))
	}
	if f.Latency < 0 {
		errs = append(errs, fmt.Errorf("latency %v is negative", f.Latency))
	}
	return errors.Join(errs...)
}

// sanitized clamps f into the valid range so the Go API never has to fail.
func (f Faults) sanitized() Faults {
	switch {
	case math.IsNaN(f.Rate) || f.Rate < 0:
		f.Rate = 0
	case f.Rate > 1:
		f.Rate = 1
	}
	if f.Status != http.StatusTooManyRequests {
		f.Status = http.StatusServiceUnavailable
	}
	f.RetryAfter = max(f.RetryAfter, 0)
	f.Latency = max(f.Latency, 0)
	return f
}

// roll decides whether this request is faulted. Rate 0 and 1 never consult
// the random source, so tests using them are deterministic.
func (f Faults) roll() bool {
	switch {
	case f.Rate <= 0:
		return false
	case f.Rate >= 1:
		return true
	default:
		// math/rand/v2's global source is randomly seeded and goroutine-safe;
		// fault timing needs no cryptographic strength.
		return rand.Float64() < f.Rate
	}
}

// retryAfterSeconds rounds up so a client never retries before d has passed.
func retryAfterSeconds(d time.Duration) string {
	return strconv.FormatInt(int64((d+time.Second-1)/time.Second), 10)
}

// writeInjectedFault answers like the gateway's throttling (900800), which the
// contract reports for both 429 and 503. Verizon Cloud paths get the OAuth
// error body the contract gives for every Cloud error instead; its error codes
// are not documented, so these are guesses clients must not depend on.
func writeInjectedFault(w http.ResponseWriter, f Faults, path string) {
	if f.RetryAfter > 0 {
		w.Header().Set("Retry-After", retryAfterSeconds(f.RetryAfter))
	}
	if isCloudPath(path) {
		code := "temporarily_unavailable"
		if f.Status == http.StatusTooManyRequests {
			code = "rate_limit_exceeded"
		}
		writeOAuthError(w, f.Status, code, "The service is busy. (simulated fault)")
		return
	}
	writeGatewayFault(w, f.Status, "900800", "Message Throttled Out",
		"You have exceeded your quota. (simulated fault)")
}
