package main

import (
	"slices"
	"sort"
	"time"

	"github.com/credops/thingspace-operator/internal/renewal"
)

// Dead credentials: what is avoidable.
//
// A Secret holds a dead credential from the first sample at which the simulator no longer takes what it
// holds (d0) until the first sample at which it takes it again (d1). How much of [d0, d1) the operator
// could have avoided depends on when a replacement could have landed:
//
//   - lead is how long before the death the design can have the replacement in the Secret: a standby
//     app's handover (handoverBefore), a Cloud refresh (its renewal ahead of expiry), an M2M session's
//     keep-alive (idle timeout − interval). A plain or renewBefore ThingSpace token has lead 0: the
//     gateway hands out the same token until it expires or is revoked, so its replacement can only be
//     asked for once it is dead; a session's Secret whose app token died follows its app (lead 0).
//   - The upstream is blocked while it refuses everything (a hard outage, with the Retry-After it sent;
//     the gateway rejecting every Bearer, for sessions), while the API server is down or restarting,
//     and from the moment the leading manager was killed until a replica leads again.
//
// The dead time is unavoidable only as far as the upstream was blocked: with lead > 0, the window in
// which a refresh could have landed, [d0 − lead, d0], must be blocked from its start, otherwise every
// dead second is avoidable (the design had lead to land it, and machine slowness is no excuse for not
// using it). Then every blocked moment of [d0, d1) is unavoidable, and so is the closing exchange: from
// the arrival at the simulator of the last successful call for the credential's subjects (its app key,
// UWS user, Cloud client) to d1, which includes writing the Secret; for an answer the simulator held
// and then delivered, from its delivery (the hold itself is blocked). With lead 0 there is no such
// window (the replacement can only be asked for once the credential is dead): the moments between the
// death and a blocked stretch (the leader killed 0.3 s after a plain token died, a refused call) are
// the operator's reaction and avoidable, the stretch itself is not. Nothing else is excused: a timer
// that fires late, a retry that waits longer than it must, a restart that does not pick up where it
// was, a kill the design did not absorb, all count as avoidable, and a run with any avoidable second
// fails.

type deadSpan struct {
	cred int
	// after is the last sample at which the credential was live: it died in (after, start].
	after, start, end      time.Time
	unavoidable, avoidable time.Duration
}

// merged returns the blocked windows that apply to a credential kind, merged and sorted.
func merged(ws []window, kind string) []window {
	var out []window
	for _, w := range ws {
		switch w.what {
		case "upstream", "api", "leader", "refused":
		case "m2m":
			if kind != "session" && kind != "" {
				continue
			}
		default:
			continue
		}
		out = append(out, w)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	var m []window
	for _, w := range out {
		if n := len(m); n > 0 && !w.start.After(m[n-1].end) {
			if w.end.After(m[n-1].end) {
				m[n-1].end = w.end
			}
			continue
		}
		m = append(m, w)
	}
	return m
}

// coveredUntil is the end of the blocked stretch holding t, or t when none does.
func coveredUntil(ws []window, t time.Time) time.Time {
	for _, w := range ws {
		if !t.Before(w.start) && t.Before(w.end) {
			return w.end
		}
	}
	return t
}

func deadSpans(p *population, samples []sample, blocked []window, calls []callAt) []deadSpan {
	var out []deadSpan
	for i, cr := range p.creds {
		ws := merged(blocked, cr.kind)
		var open *deadSpan
		after := samples[0].at
		for _, s := range samples {
			st := s.creds[i]
			dead := st.exists && !st.live
			if !dead {
				after = s.at
			}
			switch {
			case dead && open == nil:
				open = &deadSpan{cred: i, after: after, start: s.at}
			case !dead && open != nil:
				open.end = s.at
				out = append(out, classify(*open, cr, ws, calls, samples))
				open = nil
			}
		}
		if open != nil {
			open.end = samples[len(samples)-1].at
			out = append(out, classify(*open, cr, ws, calls, samples))
		}
	}
	return out
}

// callAt is an upstream call: when it reached the simulator and was answered, for which subject, and
// whether the upstream refused it (a fault, a dropped or held answer, any status but 200) and for how
// long after its answer (Retry-After).
type callAt struct {
	at, done   time.Time
	subject    string
	refused    bool
	retryAfter time.Duration
	// delivered: the simulator held the answer (refused while held) and then delivered it, a 200 the
	// operator got at done: its exchange goes on from there, as a call answered at once does from at.
	delivered bool
	// issued are the credentials the answer carried.
	issued []string
}

// exchangeFrom is when a successful call's closing exchange begins (zero: it has none).
func (c callAt) exchangeFrom() time.Time {
	switch {
	case !c.refused:
		return c.at
	case c.delivered:
		return c.done
	}
	return time.Time{}
}

func classify(d deadSpan, cr credential, ws []window, calls []callAt, samples []sample) deadSpan {
	lead := cr.lead
	if cr.kind == "session" && appTokenDead(d, samples) {
		lead = 0
	}
	if cr.kind == "app" && !cr.standby {
		lead = 0
	}
	// The upstream refused each failed call of the credential's subjects while it was in flight, and
	// until the Retry-After it sent had passed.
	for _, c := range calls {
		if c.refused && slices.Contains(cr.subjects, c.subject) && c.done.Add(c.retryAfter).After(d.start.Add(-lead)) && c.at.Before(d.end) {
			ws = append(ws, window{what: "refused", start: c.at, end: c.done.Add(c.retryAfter)})
		}
	}
	ws = merged(ws, "")
	total := d.end.Sub(d.start)
	if lead > 0 && coveredUntil(ws, d.start.Add(-lead)).Before(d.start) {
		d.avoidable = total
		return d
	}
	last := issuingExchange(d, cr, calls, samples)
	if last.IsZero() {
		for _, c := range calls {
			if from := c.exchangeFrom(); !from.IsZero() && c.at.After(d.after) && from.Before(d.end) && slices.Contains(cr.subjects, c.subject) && from.After(last) {
				last = from
			}
		}
	}
	// Unavoidable: every blocked moment of the span, and the closing exchange. With lead 0 the
	// replacement can only be asked for once the credential is dead, so a stretch blocked from just
	// after the death (the leader killed a moment later, the call refused) counts from where it begins:
	// the moments before it are the operator's reaction, avoidable.
	in := append([]window(nil), ws...)
	if !last.IsZero() {
		in = append(in, window{what: "upstream", start: last, end: d.end})
	}
	d.unavoidable = min(overlap(merged(in, ""), d.start, d.end), total)
	d.avoidable = total - d.unavoidable
	return d
}

// overlap is how much of [from, to) the merged windows ws cover.
func overlap(ws []window, from, to time.Time) time.Duration {
	var out time.Duration
	for _, w := range ws {
		s, e := maxTime(w.start, from), minTime(w.end, to)
		if e.After(s) {
			out += e.Sub(s)
		}
	}
	return out
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// appTokenDead reports whether what died in a session's Secret at d.start was its app token (the second
// value) rather than the session itself.
// issuingExchange is where the closing exchange of d begins when the call that issued what the Secret
// holds again at d.end is known: the latest-arriving successful call of the credential's subjects whose
// answer carried one of the Secret's values at d.end and came after the last live sample (in flight at
// the death, or sent after it). A later call of the subjects that changed nothing the Secret then held
// (a keep-alive or re-login due while the Secret's write was in flight) does not move the exchange's
// start: the chaos suite counted a session's Secret write under slow API writes avoidable up to such a
// call. Zero: no such call (the last call of the subjects decides, as before).
func issuingExchange(d deadSpan, cr credential, calls []callAt, samples []sample) time.Time {
	var held []string
	for _, s := range samples {
		if s.at.Equal(d.end) {
			held = s.creds[d.cred].values
			break
		}
	}
	var from time.Time
	for _, c := range calls {
		f := c.exchangeFrom()
		if f.IsZero() || !c.done.After(d.after) || !f.Before(d.end) || !slices.Contains(cr.subjects, c.subject) || !f.After(from) {
			continue
		}
		for _, v := range c.issued {
			if v != "" && slices.Contains(held, v) {
				from = f
				break
			}
		}
	}
	return from
}

func appTokenDead(d deadSpan, samples []sample) bool {
	for _, s := range samples {
		if s.at.Equal(d.start) {
			st := s.creds[d.cred]
			return len(st.parts) == 2 && !st.parts[1]
		}
	}
	return false
}

// renewalWindow is how long before expiry a credential of kind may be renewed (with jitter): calls
// for one with more life left than this are calls for a still-valid credential.
func renewalWindow(cr credential) time.Duration {
	switch {
	case cr.kind == "app" && cr.standby:
		return handoverBefore + time.Duration(renewal.MaxJitter*float64(handoverBefore)) + time.Second
	case cr.kind == "app":
		// renewBefore apps rotate up to MaxJitter earlier; plain apps renew at expiry. The app's expiry
		// is expires_in (whole seconds, floored) from the answer, kept in whole seconds: up to 2 s early.
		return renewBefore + time.Duration(renewal.MaxJitter*float64(renewBefore)) + 2*time.Second
	case cr.kind == "cloud":
		return max(cloudLifetime/3, cloudRenew) + time.Duration(renewal.MaxJitter*float64(cloudLifetime)) + time.Second
	}
	return 0
}
