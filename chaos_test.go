package main

// TestChaos: three instances write to each other, and to the groups @all
// and @duo, while one of them is killed (SIGKILL) every round and
// restarted on the same data directory. A message to a group is one copy
// per member, each held to the same rules as a message to one friend.
// Every message that its sender recorded must be displayed by its receiver,
// in order, across all of the receiver's runs, and once. Two exceptions
// are allowed, the two windows the README owns up to: a message whose
// receiver was killed between writing it to the screen and marking it
// shown is shown once more at the next start; and a message whose sender
// was killed while it was on the wire and not yet durable is shown by the
// receiver although the sender never recorded it.

import (
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// chaosSeed drives every random choice of TestChaos; CHAOS_SEED overrides
// it to replay or explore.
const chaosSeed = 20240917

// chaosRounds is how many rounds of sends and one kill TestChaos runs.
const chaosRounds = 12

// chaosMsg is one line written to a sender's stdin, friend/text, or one
// member's copy of a line @group/text.
type chaosMsg struct {
	from, to string
	group    string // the group the line was written to, if any
	n        int    // the sender's counter: increasing in the order written
	text     string // "from FROM #N", unique per receiver in the test
	run      int    // which run of the sender it was written to (1 is the first)
	// confirmed: the sender's /history showed it, so it is in the sender's
	// database. Otherwise the sender was killed before we could tell, and
	// the sender's database, read by a later run, decides at the end.
	confirmed bool
}

// chaosNode is one name with its current run (nil while it is down) and
// every run it had, in order.
type chaosNode struct {
	name   string
	p      *process
	runs   []*process
	asked  int  // /whoami lines written to the current run, used as markers
	holdUp bool // killed and kept down until after the next round's sends
}

type chaosHarness struct {
	t     *testing.T
	c     *chat
	flags []string
	nodes map[string]*chaosNode
	names []string
	count map[string]int // lines written so far, per sender
	msgs  []*chaosMsg
	// killed are the runs ended by SIGKILL.
	killed map[*process]bool
}

func (h *chaosHarness) start(name string) {
	h.t.Helper()
	n := h.nodes[name]
	// As startAs does, with a label that tells the runs apart.
	dir := h.c.dirs[name]
	args := append([]string{"--peers", h.c.peersFile, "--data-dir", dir}, h.flags...)
	n.p = start(h.t, fmt.Sprintf("%s run %d", name, len(n.runs)+1), append(args, name))
	n.p.dataDir = dir
	n.p.waitGreeting(h.t, h.c.addr(name))
	n.runs = append(n.runs, n.p)
	n.asked = 0
}

// chaosKill sends SIGKILL and waits for the process to be gone, so that its
// database lock and port are free. It runs on its own goroutine, so it
// reports rather than fails.
func chaosKill(p *process) error {
	if err := p.cmd.Process.Kill(); err != nil {
		return fmt.Errorf("killing %s: %v", p.label, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(waitTimeout):
		return fmt.Errorf("%s still running %v after SIGKILL", p.label, waitTimeout)
	}
}

// chaosGroups are the groups of TestChaos's table, by name, with their
// members; @all is every name.
var chaosGroups = map[string][]string{"duo": {"user_1", "user_2"}}

// write writes the next line from -> to, where to is a friend or @group,
// and returns the messages it makes: one, or a copy per member of the
// group but from.
func (h *chaosHarness) write(from, to string) []*chaosMsg {
	h.t.Helper()
	h.count[from]++
	n := h.nodes[from]
	text := fmt.Sprintf("from %s #%d", from, h.count[from])
	dests, group := []string{to}, ""
	if g, ok := strings.CutPrefix(to, "@"); ok {
		group, dests = g, chaosGroups[g]
		if g == "all" {
			dests = h.names
		}
	}
	var out []*chaosMsg
	for _, d := range dests {
		if d != from {
			out = append(out, &chaosMsg{from: from, to: d, group: group, n: h.count[from], text: text, run: len(n.runs)})
		}
	}
	h.msgs = append(h.msgs, out...)
	n.p.send(h.t, to+"/"+text)
	return out
}

// groupTag is how lines name m's group: " (@trip)", or nothing.
func groupTag(m *chaosMsg) string {
	if m.group == "" {
		return ""
	}
	return " (@" + m.group + ")"
}

// historyLine is how the sender's /history shows m.
func historyLine(m *chaosMsg) string { return "you → " + m.to + groupTag(m) + ": " + m.text + "  [" }

// historyIn is how the receiver's /history shows m once recorded.
func historyIn(m *chaosMsg) string { return m.from + " → you" + groupTag(m) + ": " + m.text }

// shownLine is how the receiver shows m.
func shownLine(m *chaosMsg) string {
	if m.group == "" {
		return messageFrom(m.from, m.text)
	}
	return "Message from " + m.from + " to @" + m.group + ": " + m.text
}

// history asks name's current run for its whole history with every friend
// and waits until all of it is printed: /whoami after it is a marker, as
// the lines are handled in order. It returns the stderr of the run so far.
func (h *chaosHarness) history(name string) []string {
	h.t.Helper()
	n := h.nodes[name]
	for _, f := range h.names {
		if f != name {
			n.p.send(h.t, "/history "+f+" 100000")
		}
	}
	n.p.send(h.t, "/whoami")
	n.asked++
	want := n.asked
	return n.p.stderr.waitCount(h.t, "/whoami answers", want, func(l string) bool {
		return strings.HasPrefix(l, "You are "+name+", identity ")
	})
}

// confirm waits until name's /history shows every one of msgs, which makes
// each of them durable in name's database. /history reads only committed
// transactions, and a committed bbolt transaction survives the process
// being killed.
func (h *chaosHarness) confirm(name string, msgs []*chaosMsg) {
	h.t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		lines := h.history(name)
		missing := 0
		for _, m := range msgs {
			if !slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, historyLine(m)) }) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("after %v, %d of %d messages %s was given are not in its /history", waitTimeout, missing, len(msgs), name)
		}
		time.Sleep(5 * time.Millisecond) // polling: the commit is asynchronous
	}
	for _, m := range msgs {
		m.confirmed = true
	}
}

// around says which runs of m's receiver displayed the messages from the
// same sender just before and just after m, and whether they were killed.
func (h *chaosHarness) around(m *chaosMsg) string {
	n := h.nodes[m.to]
	before, after := "nothing before it", "nothing after it"
	found := false
	for i, p := range n.runs {
		state := "ran on"
		if h.killed[p] {
			state = "was then SIGKILLed"
		}
		for _, l := range p.stdout.snapshot() {
			sm := chaosLine.FindStringSubmatch(viaFriend.ReplaceAllString(l, ""))
			if sm == nil || sm[1] != m.from {
				continue
			}
			k, _ := strconv.Atoi(sm[4])
			switch {
			case k < m.n:
				before = fmt.Sprintf("run %d of %s displayed #%d before it and %s", i+1, m.to, k, state)
			case k > m.n && !found:
				found = true
				after = fmt.Sprintf("run %d displayed #%d next", i+1, k)
			}
		}
	}
	return before + ", " + after
}

type chaosDisplay struct {
	run  int // 1 for the first run
	line string
	// tailOfKilledRun: among the lines of a SIGKILLed run that its last
	// write could have held (the shell writes piped messages in batches of
	// at most shell.maxUnflushed, 128, then marks them shown).
	tailOfKilledRun bool
}

// displayedByRun is what displayed returns, with the run of each line.
func (h *chaosHarness) displayedByRun(name string) []chaosDisplay {
	var all []chaosDisplay
	for i, p := range h.nodes[name].runs {
		lines := p.stdout.snapshot()
		for j, l := range lines {
			all = append(all, chaosDisplay{run: i + 1, line: viaFriend.ReplaceAllString(l, ""), tailOfKilledRun: h.killed[p] && j >= len(lines)-128})
		}
	}
	return all
}

// runEnd says how run i (from 1) of name ended.
func (h *chaosHarness) runEnd(name string, i int) string {
	if h.killed[h.nodes[name].runs[i-1]] {
		return "SIGKILLed later"
	}
	return "not killed"
}

// displayed is everything name displayed, over all its runs, in order.
func (h *chaosHarness) displayed(name string) []string {
	var all []string
	for _, p := range h.nodes[name].runs {
		for _, l := range p.stdout.snapshot() {
			all = append(all, viaFriend.ReplaceAllString(l, ""))
		}
	}
	return all
}

// viaFriend is how a line says that a friend carried the message, sealed,
// while its recipient could not be reached: the rules of the test hold
// for it as for any.
var viaFriend = regexp.MustCompile(` \(via \S+\)$`)

// chaosLine matches a message of the test: its sender, its group if any,
// the sender named in the text, and the number.
var chaosLine = regexp.MustCompile(`^Message from (\S+?)(?: to @(\S+))?: from (\S+) #(\d+)(?: \(written [^)]*\))?$`)

func TestChaos(t *testing.T) {
	seed := uint64(chaosSeed)
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (set CHAOS_SEED to change it)", seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	names := []string{"user_1", "user_2", "user_3"}
	h := &chaosHarness{
		t:      t,
		c:      newChat(t, names...),
		flags:  []string{"--ack-timeout", "1s"},
		nodes:  make(map[string]*chaosNode),
		names:  names,
		count:  make(map[string]int),
		killed: make(map[*process]bool),
	}
	for g, members := range chaosGroups {
		h.c.addGroups(t, "@"+g+" "+strings.Join(members, " "))
	}
	for _, name := range names {
		h.nodes[name] = &chaosNode{name: name}
		h.start(name)
	}
	began := time.Now()

	// Soundness of what is required. A line written to a sender's stdin is
	// sent only once the sender has read it and committed it to its
	// database; a line written just before SIGKILL may have been read and
	// committed, read only, or not even read. So:
	//  - every round, each sender that is not killed is asked for its
	//    /history until it shows all of that round's lines: those are
	//    confirmed, durable, and required to be displayed;
	//  - the victim's lines of the round it is killed in are uncertain. At
	//    the end, the sender's /history (its database, read by a later run)
	//    decides: recorded means required, not recorded means it was never
	//    accepted and must never be displayed. Since the shell reads lines
	//    in order and the store commits in submission order, what got
	//    recorded is a prefix of them, which the order check covers.
	for round := 1; round <= chaosRounds; round++ {
		var alive []string
		for _, name := range names {
			if h.nodes[name].p != nil {
				alive = append(alive, name)
			}
		}
		victim := alive[rng.IntN(len(alive))]
		written := make(map[string][]*chaosMsg)
		for _, from := range alive {
			// A few messages to each friend and to the groups the
			// sender is in, interleaved at random.
			var dests []string
			for _, to := range names {
				if to != from {
					for range 1 + rng.IntN(3) {
						dests = append(dests, to)
					}
				}
			}
			for range 1 + rng.IntN(2) {
				dests = append(dests, "@all")
			}
			if slices.Contains(chaosGroups["duo"], from) {
				dests = append(dests, "@duo")
			}
			rng.Shuffle(len(dests), func(i, j int) { dests[i], dests[j] = dests[j], dests[i] })
			if from == victim {
				// Killed after a random number of its sends.
				dests = dests[:rng.IntN(len(dests)+1)]
			}
			for _, to := range dests {
				written[from] = append(written[from], h.write(from, to)...)
			}
		}

		// Fault injection: the victim is killed after a random delay, while
		// its own lines and its friends' messages to it may be anywhere
		// between the pipe, the databases and the sockets. The sleep picks
		// the moment of the fault; it synchronises nothing.
		// Half the time within a few milliseconds, while the victim is still
		// reading and recording its lines; else up to 150ms, while messages
		// are on the wire.
		delay := time.Duration(rng.IntN(3000)) * time.Microsecond
		if rng.IntN(2) == 0 {
			delay = time.Duration(rng.IntN(150)) * time.Millisecond
		}
		vp := h.nodes[victim].p
		killed := make(chan error, 1)
		go func() {
			time.Sleep(delay)
			killed <- chaosKill(vp)
		}()
		for _, from := range alive {
			if from != victim {
				h.confirm(from, written[from])
			}
		}
		if err := <-killed; err != nil {
			t.Fatal(err)
		}
		h.nodes[victim].p = nil
		h.killed[vp] = true
		hold := round < chaosRounds && rng.IntN(3) == 0
		t.Logf("round %d: %s killed after %d of its messages (a copy per group member) and %v; %s", round, victim, len(written[victim]), delay,
			map[bool]string{true: "kept down for a round", false: "restarted"}[hold])

		// Whoever was kept down since the last round comes back, after its
		// friends' messages of this round were queued for it.
		for _, name := range names {
			if n := h.nodes[name]; n.holdUp {
				n.holdUp = false
				h.start(name)
			}
		}
		if hold {
			h.nodes[victim].holdUp = true
		} else {
			h.start(victim)
		}
	}

	// Everything that is down comes back, and a last round without faults:
	// everyone writes to everyone, so every instance connects to every
	// other, which sends at once whatever waits for it.
	for _, name := range names {
		if n := h.nodes[name]; n.p == nil {
			n.holdUp = false
			h.start(name)
		}
	}
	final := make(map[string][]*chaosMsg)
	for _, from := range names {
		for _, to := range names {
			if to != from {
				final[from] = append(final[from], h.write(from, to)...)
			}
		}
		final[from] = append(final[from], h.write(from, "@all")...)
	}
	// The database of each sender's last run decides the uncertain ones.
	inDB := make(map[*chaosMsg]bool)
	for _, from := range names {
		h.confirm(from, final[from])
		lines := h.nodes[from].p.stderr.snapshot()
		for _, m := range h.msgs {
			if m.from == from {
				inDB[m] = slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, historyLine(m)) })
			}
		}
	}
	required := make(map[string][]*chaosMsg) // by receiver
	uncertain, recorded := 0, 0
	for _, m := range h.msgs {
		if !m.confirmed {
			uncertain++
			if inDB[m] {
				recorded++
			}
		}
		switch {
		case m.confirmed && !inDB[m]:
			t.Errorf("%s→%s %q was in %s's /history in run %d, and is no longer in its database", m.from, m.to, m.text, m.from, m.run)
		case inDB[m]:
			required[m.to] = append(required[m.to], m)
		}
	}
	copies := 0
	for _, m := range h.msgs {
		if m.group != "" {
			copies++
		}
	}
	t.Logf("%d messages written, %d of them copies of group messages; %d uncertain (sender killed), of which %d were recorded", len(h.msgs), copies, uncertain, recorded)

	// Wait until every required message is displayed. Polling: the output
	// is spread over several runs' streams.
	missing := func(to string) []*chaosMsg {
		shown := h.displayed(to)
		var out []*chaosMsg
		for _, m := range required[to] {
			if !slices.Contains(shown, shownLine(m)) {
				out = append(out, m)
			}
		}
		return out
	}
	deadline := time.Now().Add(waitTimeout)
	for _, to := range names {
		for len(missing(to)) > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
	}
	// What never came: say whether the receiver at least recorded it.
	for _, to := range names {
		lost := missing(to)
		if len(lost) == 0 {
			continue
		}
		lines := h.history(to)
		for _, m := range lost {
			where := "not recorded by the receiver either"
			if slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, historyIn(m)) }) {
				where = "but it is in the receiver's /history: recorded, never displayed"
			}
			t.Errorf("%s→%s %q (written to %s's run %d, confirmed %v) was never displayed by %s after %v, %s; %s",
				m.from, m.to, m.text, m.from, m.run, m.confirmed, to, waitTimeout, where, h.around(m))
		}
	}

	// Every sender's queue drains: nothing stays unacknowledged.
	if !t.Failed() {
		for _, name := range names {
			waitPoll(t, name+"'s /peers to show nothing waiting", func() bool { return h.nothingWaiting(name) })
		}
	}
	t.Logf("all delivered %v after the start", time.Since(began).Round(time.Millisecond))

	for _, name := range names {
		if code := h.nodes[name].p.signal(t, syscall.SIGTERM); code != 0 {
			t.Errorf("%s exited with status %d after SIGTERM, want 0", name, code)
		}
	}

	// The properties, over the concatenated stdout of each receiver.
	byText := make(map[[2]string]*chaosMsg) // (to, text)
	for _, m := range h.msgs {
		byText[[2]string{m.to, m.text}] = m
	}
	tolerated, unrecorded := 0, 0
	for _, to := range names {
		seen := make(map[string]int)
		prevAt := make(map[string]chaosDisplay) // where it was displayed last
		last := make(map[string]int)            // by sender: the last number displayed
		lastRepeat := make(map[string]int)      // by sender: the last number shown again
		newInRun := make(map[string]int)        // by sender: the run that showed something new from it
		for _, d := range h.displayedByRun(to) {
			l := d.line
			sm := chaosLine.FindStringSubmatch(l)
			if sm == nil || sm[1] != sm[3] {
				t.Errorf("%s displayed a line that is no message of this test: %q", to, l)
				continue
			}
			from, num := sm[1], sm[4]
			text := "from " + from + " #" + num
			n, _ := strconv.Atoi(num)
			m := byText[[2]string{to, text}]
			switch {
			case m == nil:
				t.Errorf("%s displayed %q, which was never written to %s", to, l, from)
				continue
			case m.group != sm[2]:
				t.Errorf("%s displayed %q, which was written to %q, as written to %q", to, l, "@"+m.group, "@"+sm[2])
			case !inDB[m] && m.confirmed:
				t.Errorf("%s displayed %q, which %s's database does not have", to, l, from)
			case !inDB[m]:
				// The README's other window: a message goes out while
				// its sender syncs it; killed in that fsync, the sender
				// loses its copy, and only its copy.
				unrecorded++
				t.Logf("%s displayed %q, which %s, killed right after writing it, never recorded (the documented window)", to, l, from)
			}
			if seen[text]++; seen[text] > 1 {
				prev := prevAt[text]
				// The README's first window: killed between writing a batch of
				// lines and marking them shown, the receiver shows them once
				// more at its next start, in order, before anything newer
				// from that friend.
				if d.run > prev.run && prev.tailOfKilledRun && newInRun[from] != d.run && n <= last[from] && n > lastRepeat[from] {
					lastRepeat[from] = n
					tolerated++
					t.Logf("%s showed %s #%d again in run %d: run %d was killed right after showing it (the documented window)", to, from, n, d.run, prev.run)
				} else {
					t.Errorf("%s displayed %q more than once: in its run %d (%s), and again in run %d; the message was written to %s's run %d (confirmed %v)",
						to, l, prev.run, h.runEnd(to, prev.run), d.run, from, m.run, m.confirmed)
				}
			} else if n <= last[from] {
				t.Errorf("%s displayed %s #%d after #%d: out of order", to, from, n, last[from])
			} else {
				newInRun[from] = d.run
			}
			prevAt[text] = d
			last[from] = max(last[from], n)
		}
		for _, m := range required[to] {
			if seen[m.text] == 0 {
				t.Errorf("%s never displayed %q from %s", to, m.text, m.from)
			}
		}
	}
	t.Logf("done in %v; %d message(s) shown again after a kill, %d delivered and not recorded by their killed sender, in the documented windows",
		time.Since(began).Round(time.Millisecond), tolerated, unrecorded)
}

// nothingWaiting asks name for /peers and reports whether it shows no
// message waiting for any friend.
func (h *chaosHarness) nothingWaiting(name string) bool {
	h.t.Helper()
	n := h.nodes[name]
	n.p.send(h.t, "/peers")
	n.p.send(h.t, "/whoami")
	n.asked++
	lines := n.p.stderr.waitCount(h.t, "/whoami answers", n.asked, func(l string) bool {
		return strings.HasPrefix(l, "You are "+name+", identity ")
	})
	// The last table before the marker: FRIEND ADDRESS ... WAITING.
	header := -1
	for j, l := range lines {
		if strings.HasPrefix(l, "FRIEND") && strings.HasSuffix(strings.TrimRight(l, " "), "WAITING") {
			header = j
		}
	}
	if header < 0 {
		h.t.Fatalf("%s's /peers printed no table", name)
	}
	rows := 0
	for _, l := range lines[header+1:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			break
		}
		rows++
		if f[len(f)-1] != "0" {
			return false
		}
	}
	if rows != len(h.names)-1 {
		h.t.Fatalf("%s's /peers table has %d rows, want %d:\n%s", name, rows, len(h.names)-1, quoteLines(lines[header:]))
	}
	return true
}
