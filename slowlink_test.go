//go:build linux

package main

// TestSlowLinkConnects runs two instances in network namespaces joined by a
// link that holds every packet for seconds each way (netem_test.go's
// delay), longer than a round trip fits in the first dial's timeout. The
// network package doubles the dial and handshake timeouts after each
// failed attempt in a row (grown in network/peer.go), so the first attempt
// times out and the second connects and delivers. It needs what
// TestNetnsDelay needs: root, ip(8) and iptables(8). It uses the other test
// files' helpers, read-only.

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"p2pchat/network"
)

// slowLinkDeadline bounds the wait for the message and its acknowledgement,
// from the write to user_1's stdin: three times what the 3 s case needs.
const slowLinkDeadline = 90 * time.Second

func TestSlowLinkConnects(t *testing.T) {
	ip := requireNetnsPrivileges(t)
	requireIptables(t)
	cases := []struct {
		name   string
		oneWay time.Duration
		full   bool // only with P2PCHAT_FULL=1
	}{
		// The shortest delay whose round trip (5.2 s) is longer than
		// network.DialTimeout (5 s), so the first dial must time out
		// and the second, with 10 s, connect. There is no flag for the
		// timeouts, so it cannot be made much quicker: about 24 s,
		// most of it the round trips (TCP, TLS, hello and welcome).
		{name: "2.6s", oneWay: 2600 * time.Millisecond},
		// The delay of the issue: a round trip of 6 s, which used to
		// never connect. About 27 s, and it shows nothing the 2.6 s
		// case does not: only with P2PCHAT_FULL=1, so that CI's run
		// stays short.
		{name: "3s", oneWay: 3 * time.Second, full: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.full && os.Getenv("P2PCHAT_FULL") != "1" {
				t.Skipf("the %v one-way delay takes about 27 s: set P2PCHAT_FULL=1 to run it (the 2.6s case checks the same in CI)", c.oneWay)
			}
			// Mostly waiting: the cases run side by side, each in
			// namespaces of its own.
			t.Parallel()
			runSlowLink(t, ip, c.oneWay)
		})
	}
}

func runSlowLink(t *testing.T, ip string, oneWay time.Duration) {
	rtt := 2 * oneWay
	if rtt <= network.DialTimeout {
		t.Fatalf("a one-way delay of %v fits a round trip in the first dial's %v: it tests nothing", oneWay, network.DialTimeout)
	}
	n := newNetnsPair(t, ip)
	// Before the instances, so that they stop first (see delay).
	d := n.delay(t, oneWay)
	names, dirs, peersFile := n.pairTable(t)
	var u [2]*nsInstance
	for i, name := range names {
		u[i] = n.start(t, i, name, peersFile, dirs[i])
	}

	text := fmt.Sprintf("across %v each way", oneWay)
	want := messageFrom(names[0], text)
	sent := time.Now()
	deadline := sent.Add(slowLinkDeadline)
	u[0].send(t, names[1]+"/"+text)

	slowLinkWait(t, u[1].stdout, deadline, "the message", func(lines []string) bool {
		return slices.Contains(lines, want)
	})
	took := time.Since(sent)
	// The first dial gives up after DialTimeout; then, after a backoff
	// of about 250 ms, TCP's handshake and TLS's take a round trip each,
	// and the hello with the message one way (it does not wait for the
	// welcome).
	least := network.DialTimeout + 2*rtt + oneWay
	t.Logf("one-way delay %v: %s displayed the message %v after the write to %s's stdin (at least %v: the first dial's %v, 2 round trips and one way)",
		oneWay, names[1], took.Round(time.Millisecond), names[0], least, network.DialTimeout)
	if took < least {
		t.Errorf("delivered in %v, less than the %v that a first dial timing out and the second connecting take: was the link delayed?", took.Round(time.Millisecond), least)
	}

	// Acknowledged: user_1 says so, as for any message that was queued,
	// and has nothing left waiting.
	delivered := fmt.Sprintf("Delivered to %s: %q", names[1], text)
	slowLinkWait(t, u[0].stderr, deadline, "the delivery notice", func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, delivered) })
	})
	acked := time.Since(sent)
	if left := u[0].waiting(t, names[1]); left != 0 {
		t.Errorf("%s's /peers shows %d messages to %s waiting after the delivery notice, want 0", names[0], left, names[1])
	}
	t.Logf("one-way delay %v: %s heard of the delivery %v after the write", oneWay, names[0], acked.Round(time.Millisecond))

	// The mechanism, from user_1's log: one attempt that timed out, then
	// one connection, never lost.
	ups := u[0].logCount(t, "client connection up", names[1])
	fails := u[0].logCount(t, "cannot reach friend", names[1])
	timeouts := u[0].logCount(t, "cannot reach friend", names[1], "timeout")
	lost := u[0].logCount(t, "client connection lost", names[1])
	t.Logf("one-way delay %v: %s's log shows %d dial attempts: %d that could not reach %s (%d timed out), %d connection up, %d lost",
		oneWay, names[0], fails+ups, fails, names[1], timeouts, ups, lost)
	if timeouts < 1 {
		t.Errorf("%s's log shows no attempt to reach %s that timed out: the first dial's %v should not fit a round trip of %v", names[0], names[1], network.DialTimeout, rtt)
	}
	if fails != 1 || ups != 1 || lost != 0 {
		t.Errorf("%s's log shows %d failed attempts, %d connections up and %d lost, want 1, 1 and 0: the second attempt, with its timeouts doubled, should connect", names[0], fails, ups, lost)
	}
	if got := u[1].logCount(t, "inbound connection up", names[0]); got != 1 {
		t.Errorf("%s's log shows %d inbound connections from %s up, want 1", names[1], got, names[0])
	}
	for i, from := range []string{names[1], names[0]} {
		for _, l := range slowLinkTimeline(t, u[i], from, sent) {
			t.Logf("%s's log: %s", names[i], l)
		}
	}

	// Once: the acknowledgement is in, so nothing is sent again, and the
	// first attempt never got as far as TCP's handshake.
	if got := u[1].stdout.snapshot(); !slices.Equal(got, []string{want}) {
		t.Errorf("%s's stdout, want the message once:\n%s", names[1], quoteLines(got))
	}
	d.checkNoDrops(t)
}

// slowLinkWait waits until cond holds for the lines of s so far, or fails
// the test at deadline or if s ends first: stream.wait's, for longer than
// its waitTimeout.
func slowLinkWait(t *testing.T, s *stream, deadline time.Time, what string, cond func([]string) bool) {
	t.Helper()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		s.mu.Lock()
		lines, eof, changed := slices.Clone(s.lines), s.eof, s.changed
		s.mu.Unlock()
		if cond(lines) {
			return
		}
		if eof {
			t.Fatalf("%s ended before %s; it has:\n%s", s.name, what, quoteLines(lines))
		}
		select {
		case <-changed:
		case <-timer.C:
			t.Fatalf("timed out after %v waiting for %s on %s; it has:\n%s", slowLinkDeadline, what, s.name, quoteLines(lines))
		}
	}
}

// slowLinkTimeline returns the lines of p's log about peer, each with its
// time as an offset from since instead of the time= field.
func slowLinkTimeline(t *testing.T, p *nsInstance, peer string, since time.Time) []string {
	t.Helper()
	b, err := os.ReadFile(p.logPath())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if !slices.Contains(strings.Fields(l), "friend="+peer) {
			continue
		}
		stamp, rest, ok := strings.Cut(strings.TrimPrefix(l, "time="), " ")
		if at, err := time.Parse(time.RFC3339, stamp); ok && err == nil {
			l = fmt.Sprintf("%+7.3fs %s", at.Sub(since).Seconds(), rest)
		}
		out = append(out, l)
	}
	return out
}
