//go:build linux

package main

// The first message on a new connection over a link with a round trip of
// 50 ms (netem_test.go's delay between two network namespaces), counted in
// round trips. The client sends its hello and the first messages right
// after the TLS 1.3 handshake, without waiting for the welcome
// (network/dial.go), so a message is shown about 2.5 round trips after
// Enter: one for TCP, one for TLS 1.3, and half for the message itself.
// With the hello and welcome first it was 3.5.
//
// The namespace helpers take a *testing.T, so the measurement is a test,
// TestFirstMessageRoundTrips, which checks only the mechanism (every
// message shown, each on a new connection, no packet dropped) and logs the
// figures; BenchmarkFirstMessageRTT runs that test in a child test binary
// for the samples and reports them. Both need what TestNetnsDelay needs:
// root, ip(8) and iptables(8).
//
//	go test -run '^$' -bench BenchmarkFirstMessageRTT -benchtime 1x -v .
//	P2PCHAT_BENCH_RTT_SAMPLES=50 go test -run '^$' -bench BenchmarkFirstMessageRTT -benchtime 1x .

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"
)

const (
	// rttOneWay is the delay of every packet, each way.
	rttOneWay = 25 * time.Millisecond
	linkRTT   = 2 * rttOneWay
	// rttIdleTimeout is user_1's --idle-timeout, which closes the
	// connection between two samples: well past the acknowledgement of
	// the last message (3 round trips after Enter).
	rttIdleTimeout = 500 * time.Millisecond
	// rttTarget: the first message within 2.7 round trips, the floor of
	// 2.5 (rttFloor) and a little for the programs.
	rttTarget = 27 * linkRTT / 10
	// rttFloor: TCP's handshake, TLS 1.3's, and the message one way.
	rttFloor = 5 * linkRTT / 2
	// rttBefore: with the hello and welcome a round trip of their own.
	rttBefore = 7 * linkRTT / 2

	// rttSamplesEnv is how many first messages to time: 10 for the
	// benchmark (per b.N), 3 when the test runs on its own.
	rttSamplesEnv = "P2PCHAT_BENCH_RTT_SAMPLES"
	// rttOutEnv is set by the benchmark for its child: the file where the
	// test writes its samples (firstFlightSamples, as JSON).
	rttOutEnv = "P2PCHAT_BENCH_RTT_OUT"
)

// firstFlightSamples is what TestFirstMessageRoundTrips measured: first
// messages of p2pchat, each on a new connection, and of the baseline
// (testdata/baseline send-each: a plain TCP connection per line).
type firstFlightSamples struct {
	P2pchat  []time.Duration `json:"p2pchat"`
	Baseline []time.Duration `json:"baseline"`
}

// TestFirstMessageRoundTrips: user_1 in the first namespace writes to user_2
// in the second, one message at a time, each on a new connection (user_1's
// log says the previous one closed for idleness, user_2's that it went
// down, before the next is written), and times each from the write to
// user_1's stdin until user_2 prints it. It asserts no timing: only that
// every message is shown once, each on a connection of its own, and that
// no delayed packet was dropped. The figures go to the log, and to the file
// in P2PCHAT_BENCH_RTT_OUT for BenchmarkFirstMessageRTT.
func TestFirstMessageRoundTrips(t *testing.T) {
	ip := requireNetnsPrivileges(t)
	requireIptables(t)
	out := os.Getenv(rttOutEnv)
	def := 3
	if out != "" {
		def = 10
	}
	samples := envInt(t, rttSamplesEnv, def)

	n := newNetnsPair(t, ip)
	// Before the processes, so that they stop first (see delay).
	d := n.delay(t, rttOneWay)
	base, checkBase := firstFlightBaseline(t, n)
	chat, checkChat := firstFlightP2pchat(t, n)
	// In turns, so that the machine's being busy for a while (other
	// tests) touches both alike.
	got := firstFlightSamples{Baseline: make([]time.Duration, samples), P2pchat: make([]time.Duration, samples)}
	for i := range samples {
		got.Baseline[i] = base(i)
		got.P2pchat[i] = chat(i)
	}
	checkBase(samples)
	checkChat(samples)
	d.checkNoDrops(t)
	if t.Failed() {
		return
	}

	t.Logf("one-way delay %v: first message, stdin to the friend's stdout: %s; baseline (TCP only): %s",
		rttOneWay, rttFigures(got.P2pchat), rttFigures(got.Baseline))
	t.Logf("p2pchat samples: %v", roundAll(got.P2pchat))
	t.Logf("baseline samples: %v", roundAll(got.Baseline))
	if out != "" {
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(out, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// firstFlightP2pchat runs user_2 in namespace 1 and user_1, with a short
// --idle-timeout, in namespace 0. sample(i) times first message i from
// user_1 to user_2, then waits, untimed, for its connection to close at
// both ends; check(samples) checks that each message was shown once, on a
// connection of its own.
func firstFlightP2pchat(t *testing.T, n *netnsPair) (sample func(i int) time.Duration, check func(samples int)) {
	names, dirs, peersFile := n.pairTable(t)
	u2 := n.start(t, 1, names[1], peersFile, dirs[1])
	u1 := n.start(t, 0, names[0], peersFile, dirs[0], "--idle-timeout", rttIdleTimeout.String())

	closed := func() int { return u1.logCount(t, "client connection closed", names[1], "reason=idle") }
	gone := func() int {
		return u2.logCount(t, "inbound connection down", names[0]) +
			u2.logCount(t, "inbound connection idle, closed", names[0])
	}
	sample = func(i int) time.Duration {
		t.Helper()
		text := fmt.Sprintf("sample %d", i+1)
		want := messageFrom(names[0], text)
		t0 := time.Now()
		u1.send(t, names[1]+"/"+text)
		u2.stdout.wait(t, strconv.Quote(want), func(lines []string) bool { return slices.Contains(lines, want) })
		took := time.Since(t0)
		// Untimed: the connection closes for idleness at both ends
		// before the next sample, which must dial anew.
		waitPoll(t, fmt.Sprintf("%s's log to say its connection closed for idleness %d times", names[0], i+1), func() bool { return closed() >= i+1 })
		waitPoll(t, fmt.Sprintf("%s's log to say the inbound connection went down %d times", names[1], i+1), func() bool { return gone() >= i+1 })
		return took
	}
	check = func(samples int) {
		t.Helper()
		if ups := u1.logCount(t, "client connection up", names[1]); ups != samples {
			t.Errorf("%s's log says its connection to %s came up %d times for %d first messages, want one each", names[0], names[1], ups, samples)
		}
		if ins := u2.logCount(t, "inbound connection up", names[0]); ins != samples {
			t.Errorf("%s's log says an inbound connection from %s came up %d times for %d first messages, want one each", names[1], names[0], ins, samples)
		}
		shown := slices.DeleteFunc(u2.stdout.snapshot(), func(l string) bool { return !isMessage(l) })
		if len(shown) != samples {
			t.Errorf("%s showed %d messages for %d sent:\n%s", names[1], len(shown), samples, quoteLines(shown))
		}
	}
	return sample, check
}

// firstFlightBaseline runs testdata/baseline send-each in namespace 0 (a
// new TCP connection per line) and its receiver in namespace 1. sample(i)
// pauses, untimed, then times line i from the sender's stdin to the
// receiver's stdout: TCP's handshake and the line one way, 1.5 round
// trips. check(samples) checks the receiver's last line.
func firstFlightBaseline(t *testing.T, n *netnsPair) (sample func(i int) time.Duration, check func(samples int)) {
	bin := baselineBinary(t)
	addr := n.addr[1].Addr().String() + ":50001"
	recv := startProc(t, "baseline recv in "+n.ns[1], n.ip, "netns", "exec", n.ns[1], bin, "recv", addr)
	recv.stderr.waitLine(t, "listening on "+addr)
	send := startProc(t, "baseline send-each in "+n.ns[0], n.ip, "netns", "exec", n.ns[0], bin, "send-each", addr)
	send.stderr.waitLine(t, "ready to connect to "+addr)
	sample = func(i int) time.Duration {
		t.Helper()
		// Untimed: the last packets of the connection closed before
		// (p2pchat's, the other end's FIN and its ACK) are through.
		time.Sleep(2 * linkRTT)
		t0 := time.Now()
		send.writeLine(t, fmt.Sprintf("first %d", i+1))
		return recv.stdout.waitLines(t, i+1).Sub(t0)
	}
	check = func(samples int) {
		t.Helper()
		if got, want := recv.stdout.lastLine(), fmt.Sprintf("first %d", samples); got != want {
			t.Errorf("the baseline receiver's last line is %q, want %q", got, want)
		}
	}
	return sample, check
}

// rttFigures is p50 and p99 of d, in ms and in round trips.
func rttFigures(d []time.Duration) string {
	p50, p99 := percentile(d, 50), percentile(d, 99)
	return fmt.Sprintf("p50 %s (%.2f RTT), p99 %s (%.2f RTT) of %d", fmtDur(p50), ratio(p50, linkRTT), fmtDur(p99), ratio(p99, linkRTT), len(d))
}

// BenchmarkFirstMessageRTT: the first message on a new connection over a
// link with a round trip of 50 ms, in ms and in round trips, with
// P2PCHAT_BENCH_RTT_SAMPLES (10) samples per b.N. It runs
// TestFirstMessageRoundTrips in a child test binary (the namespace helpers
// take a *testing.T) and reports its samples; it skips or fails as that
// test does. The baseline is testdata/baseline send-each, plain TCP (1.5
// round trips). Target: p50 <= 2.7 round trips (135 ms), over a floor of
// 2.5 (125 ms): TCP, TLS 1.3, and the message one way.
func BenchmarkFirstMessageRTT(b *testing.B) {
	samples := envInt(b, rttSamplesEnv, 10) * b.N
	out := filepath.Join(b.TempDir(), "samples.json")
	cmd := exec.Command(os.Args[0], "-test.run", "^TestFirstMessageRoundTrips$", "-test.count", "1", "-test.v")
	cmd.Env = append(os.Environ(), rttOutEnv+"="+out, rttSamplesEnv+"="+strconv.Itoa(samples))
	text, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("TestFirstMessageRoundTrips in a child test binary: %v\n%s", err, text)
	}
	raw, err := os.ReadFile(out)
	if errors.Is(err, os.ErrNotExist) {
		b.Skipf("TestFirstMessageRoundTrips wrote no samples (skipped?):\n%s", text)
	}
	if err != nil {
		b.Fatal(err)
	}
	var got firstFlightSamples
	if err := json.Unmarshal(raw, &got); err != nil {
		b.Fatalf("%s: %v", out, err)
	}
	if len(got.P2pchat) != samples || len(got.Baseline) != samples {
		b.Fatalf("%s has %d samples of p2pchat and %d of the baseline, want %d each", out, len(got.P2pchat), len(got.Baseline), samples)
	}

	p50, p99 := percentile(got.P2pchat, 50), percentile(got.P2pchat, 99)
	bp50, bp99 := percentile(got.Baseline, 50), percentile(got.Baseline, 99)
	met := p50 <= rttTarget
	rtts := func(d time.Duration) string { return fmt.Sprintf("%.2f", ratio(d, linkRTT)) }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(millis(p50), "p50-ms")
	b.ReportMetric(millis(p99), "p99-ms")
	b.ReportMetric(ratio(p50, linkRTT), "p50-rtt")
	b.ReportMetric(ratio(p99, linkRTT), "p99-rtt")
	b.ReportMetric(millis(bp50), "baseline-p50-ms")
	b.ReportMetric(millis(bp99), "baseline-p99-ms")
	b.ReportMetric(millis(rttFloor), "floor-ms")
	b.ReportMetric(ratio(p50, rttFloor), "floor-ratio")
	b.ReportMetric(boolMetric(met), "target-met")
	logTable(b, fmt.Sprintf("first message on a new connection, %v each way (RTT %v), stdin to friend's stdout, %d samples; baseline: TCP send-each (1.5 RTT), or what the row says", rttOneWay, linkRTT, samples),
		figure{"p50", fmtDur(p50), fmtDur(bp50), fmtRatio(ratio(p50, bp50)), "<= " + fmtDur(rttTarget), yesNo(met)},
		figure{"p50 in RTTs", rtts(p50), rtts(bp50), "", "<= " + rtts(rttTarget), yesNo(met)},
		figure{"p99", fmtDur(p99), fmtDur(bp99), fmtRatio(ratio(p99, bp99)), "", ""},
		figure{"p99 in RTTs", rtts(p99), rtts(bp99), "", "", ""},
		figure{"p50 vs floor: TCP + TLS 1.3 + one way (2.5 RTT)", fmtDur(p50), fmtDur(rttFloor), fmtRatio(ratio(p50, rttFloor)), "", ""},
		figure{"p50 vs hello and welcome first (3.5 RTT)", fmtDur(p50), fmtDur(rttBefore), fmtRatio(ratio(p50, rttBefore)), "< 1", yesNo(p50 < rttBefore)},
	)
	// Taken in turns: a slow baseline sample next to a slow one of
	// p2pchat's says the machine was busy, not p2pchat slow.
	b.Logf("samples: p2pchat %v; baseline %v", roundAll(got.P2pchat), roundAll(got.Baseline))
}
