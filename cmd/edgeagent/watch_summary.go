package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// checkedRules is the summary's list of what the watcher checks.
const checkedRules = `checked: the seq chain of each edge node (NBIRTH 0, then +1 per DBIRTH, NDATA, DDATA, DDEATH of the node
  and its devices, 255 wraps to 0); NBIRTH seq 0, bdSeq and Node Control/Rebirth; NDEATH bdSeq against its
  NBIRTH; births before data (NBIRTH, then DBIRTH of the device); aliases and names against the births;
  values against the births' datatypes (arrays, DataSets, templates); payload and metric timestamps;
  QoS 0 and retain=false; STATE payloads`

// watchRun describes a run of the watcher for its summary.
type watchRun struct {
	broker, topic string
	from, to      time.Time
	check         time.Duration // 0: watched until stopped
}

// summary writes the report of everything handled so far and returns the
// number of violations and of edge node messages.
func (c *checker) summary(w io.Writer, r watchRun) (violations, msgs int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	what := "watched"
	if r.check > 0 {
		what = "checked for " + r.check.String() + ","
	}
	fmt.Fprintf(w, "\nSparkplug B summary: %s %s on %s, %s to %s (%s)\n", what, r.topic, redactURL(r.broker),
		r.from.Format("2006-01-02 15:04:05.000"), r.to.Format("15:04:05.000"), r.to.Sub(r.from).Round(time.Millisecond))
	fmt.Fprintln(w, checkedRules)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "edge node\tmessages\tbirths N/D\tdeaths N/D\tdata N/D\tcommands\tmetrics\tseq ok\tviolations\tinfo")
	var total nodeStats
	for _, id := range c.order {
		s := &c.nodes[id].st
		total.add(s)
		fmt.Fprintf(tw, "%s\t%s\n", id, s.row())
	}
	if len(c.order) > 1 {
		fmt.Fprintf(tw, "%s\t%s\n", "total", total.row())
	}
	tw.Flush()
	if c.state > 0 || c.other > 0 {
		fmt.Fprintf(w, "STATE messages: %d; other topics: %d\n", c.state, c.other)
	}
	if n := len(c.lostAt); n > 0 {
		fmt.Fprintf(w, "the watcher lost its connection %d time(s), first at %s: what was published meanwhile was not checked\n",
			n, c.lostAt[0].Format("15:04:05.000"))
	}
	total.add(&c.global)
	violations = sum(total.violations)
	if violations > 0 {
		fmt.Fprintln(w, "first violation of each kind:")
		for _, l := range c.first {
			fmt.Fprintln(w, "  "+l)
		}
	}
	msgs = total.msgs
	from := fmt.Sprintf("%d messages from %d edge node(s)", total.msgs, len(c.order))
	switch {
	case violations > 0:
		fmt.Fprintf(w, "result: FAIL: %d violation(s) (%s) in %s; info: %s\n", violations, counts(total.violations, ""), from, counts(total.infos, "none"))
	case msgs == 0:
		fmt.Fprintf(w, "result: FAIL: no Sparkplug message from any edge node: nothing was checked (is the agent publishing to this broker, under %s?)\n", r.topic)
	default:
		fmt.Fprintf(w, "result: PASS: 0 violations in %s; info: %s\n", from, counts(total.infos, "none"))
	}
	return violations, msgs
}

// row is the summary table's cells of a node, after its name.
func (s *nodeStats) row() string {
	v := "0"
	if n := sum(s.violations); n > 0 {
		v = fmt.Sprintf("%d (%s)", n, counts(s.violations, ""))
	}
	return fmt.Sprintf("%d\t%d/%d\t%d/%d\t%d/%d\t%d\t%d\t%d\t%s\t%s", s.msgs, s.nbirth, s.dbirth, s.ndeath, s.ddeath,
		s.ndata, s.ddata, s.commands, s.metrics, s.seqChecked, v, counts(s.infos, "-"))
}

func (s *nodeStats) add(o *nodeStats) {
	s.msgs += o.msgs
	s.nbirth += o.nbirth
	s.dbirth += o.dbirth
	s.ndeath += o.ndeath
	s.ddeath += o.ddeath
	s.ndata += o.ndata
	s.ddata += o.ddata
	s.commands += o.commands
	s.metrics += o.metrics
	s.seqChecked += o.seqChecked
	s.violations = addCounts(s.violations, o.violations)
	s.infos = addCounts(s.infos, o.infos)
}

func addCounts(dst, src map[string]int) map[string]int {
	for k, v := range src {
		if dst == nil {
			dst = map[string]int{}
		}
		dst[k] += v
	}
	return dst
}

// counts formats counts by kind, "alias 1, seq 2", or none if there are
// none.
func counts(m map[string]int, none string) string {
	if len(m) == 0 {
		return none
	}
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %d", k, m[k])
	}
	return b.String()
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
