//go:build node

package node

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// callLog is what a workload's log says about its calls up to a moment.
type callLog struct {
	calls, failed int
	// longest is the longest run of consecutive failed calls, from the first to the last of them.
	longest time.Duration
	// lastReport is when the workload last reported its counts: a workload that stopped calling
	// before the end proves nothing.
	lastReport time.Time
}

// parseCallLog reads a workload's container log (with the kubelet's timestamps) up to end: the counts
// of its last "C" report before end, and the runs of its "F" lines up to that report's call. Every
// failed call it counted must have its line: a lost line would hide a failure window.
func parseCallLog(log string, end time.Time) (callLog, error) {
	type failure struct {
		call int
		at   time.Time
	}
	var out callLog
	var fails []failure
	for line := range strings.SplitSeq(log, "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		at, err := time.Parse(time.RFC3339Nano, f[0])
		if err != nil || at.After(end) {
			continue
		}
		switch {
		case f[1] == "F" && len(f) == 3:
			n, err := strconv.Atoi(f[2])
			if err != nil {
				return out, fmt.Errorf("bad line %q", line)
			}
			fails = append(fails, failure{n, at})
		case f[1] == "C" && len(f) == 4:
			n, err1 := strconv.Atoi(f[2])
			bad, err2 := strconv.Atoi(f[3])
			if err1 != nil || err2 != nil {
				return out, fmt.Errorf("bad line %q", line)
			}
			out.calls, out.failed, out.lastReport = n, bad, at
		}
	}
	counted := 0
	var runStart, prev failure
	for i, fl := range fails {
		if fl.call > out.calls {
			break
		}
		counted++
		if i == 0 || fl.call != prev.call+1 {
			runStart = fl
		}
		prev = fl
		if d := fl.at.Sub(runStart.at); d > out.longest {
			out.longest = d
		}
	}
	if counted != out.failed {
		return out, fmt.Errorf("the log has %d failed-call lines up to call %d, the workload counted %d", counted, out.calls, out.failed)
	}
	return out, nil
}

// proofRow is one line of the proof's table.
type proofRow struct {
	workload  string
	rotations int
	log       callLog
	// refused is how many calls the upstream refused (a retried call counts here, not in failed).
	refused int
}

func (r proofRow) String() string {
	return fmt.Sprintf("%-52s %9d %7d %12d %22s %8d", r.workload, r.rotations, r.log.calls, r.log.failed,
		r.log.longest.Round(100*time.Millisecond), r.refused)
}

// proofTableHeader heads the rows: the longest failure window is the longest run of consecutive
// failed calls, first to last; refused counts the calls the upstream refused (retried ones included).
var proofTableHeader = fmt.Sprintf("%-52s %9s %7s %12s %22s %8s", "workload", "rotations", "calls", "failed calls",
	"longest failure window", "refused")
