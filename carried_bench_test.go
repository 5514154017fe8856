package main

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// carriedSamples is how many carried messages BenchmarkCarriedLatency times
// per b.N; P2PCHAT_CARRIED_SAMPLES changes it.
const carriedSamples = 200

// BenchmarkCarriedLatency times a message that a friend carries, from the
// sender's stdin to the recipient's stdout: user_1 and user_3 have no
// address ("-": behind NATs) and cannot reach each other, user_2 carries.
// Beside it, in turns: the same message direct between two instances, and
// the durable TLS relay. A carried message makes two hops, each recorded
// before it goes on, and sealing; the target is two direct hops.
func BenchmarkCarriedLatency(b *testing.B) {
	n := envInt(b, "P2PCHAT_CARRIED_SAMPLES", carriedSamples) * b.N

	ds, dr := startDurable(b)
	direct := newChat(b, "user_1", "user_2")
	d1 := direct.launch(b, "user_1")
	d2 := direct.launch(b, "user_2")

	c := newChat(b, "user_1", "user_2", "user_3")
	noAddress(b, c, "user_1", "user_3")
	carol := launchNoAddress(b, c, "user_3")
	bob := c.launch(b, "user_2")
	alice := launchNoAddress(b, c, "user_1")
	defer bob.kill()
	// The first message waits for carol's card to reach alice through bob.
	alice.writeLine(b, "user_3/are you there?")
	carol.stdout.waitLines(b, 1)

	var sent, directSent, durableSent int
	samples := inTurns(n,
		func() time.Duration {
			sent++
			return latencies(b, 1, carol.stdout, nil, func(int) { alice.writeLine(b, fmt.Sprintf("user_3/carried %d", sent)) })[0]
		},
		func() time.Duration {
			directSent++
			return latencies(b, 1, d2.stdout, nil, func(int) { d1.writeLine(b, fmt.Sprintf("user_2/direct %d", directSent)) })[0]
		},
		func() time.Duration {
			durableSent++
			return latencies(b, 1, dr.stdout, nil, func(int) { ds.writeLine(b, fmt.Sprintf("user_2/durable %d", durableSent)) })[0]
		},
	)
	if want := fmt.Sprintf("Message from user_1: carried %d (via user_2)", sent); carol.stdout.lastLine() != want {
		b.Fatalf("user_3's last line is %q, want %q", carol.stdout.lastLine(), want)
	}
	got, dir, dur := samples[0], samples[1], samples[2]
	p50, p99 := percentile(got, 50), percentile(got, 99)
	dp50, dp99 := percentile(dir, 50), percentile(dir, 99)
	rp50 := percentile(dur, 50)
	target := 2 * dp50
	met := p50 <= target
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(micros(p50), "carried-p50-µs")
	b.ReportMetric(micros(p99), "carried-p99-µs")
	b.ReportMetric(micros(dp50), "direct-p50-µs")
	b.ReportMetric(micros(rp50), "durable-relay-p50-µs")
	b.ReportMetric(ratio(p50, dp50), "ratio")
	b.ReportMetric(boolMetric(met), "target-met")
	logTable(b, fmt.Sprintf("carried latency, stdin to the recipient's stdout through a friend, %d messages one at a time, connections open; baseline: the same direct, in turns", n),
		figure{"p50", fmtDur(p50), fmtDur(dp50), fmtRatio(ratio(p50, dp50)), fmt.Sprintf("<= 2 direct hops = %s", fmtDur(target)), yesNo(met)},
		figure{"p99", fmtDur(p99), fmtDur(dp99), fmtRatio(ratio(p99, dp99)), "", ""},
		figure{"p50 vs durable relay", fmtDur(p50), fmtDur(rp50), fmtRatio(ratio(p50, rp50)), "", ""},
	)
}

// noAddress rewrites c's table so that each of names has "-" for its host:
// no address to dial.
func noAddress(tb testing.TB, c *chat, names ...string) {
	tb.Helper()
	b, err := os.ReadFile(c.peersFile)
	if err != nil {
		tb.Fatal(err)
	}
	for _, name := range names {
		b = regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(name)+`\t127\.0\.0\.1 `).ReplaceAll(b, []byte(name+"\t- "))
	}
	if err := os.WriteFile(c.peersFile, b, 0o600); err != nil {
		tb.Fatal(err)
	}
}

// launchNoAddress is chat.launch for a friend with no address: it listens
// on every interface.
func launchNoAddress(tb testing.TB, c *chat, name string) *proc {
	tb.Helper()
	p := startProc(tb, name, binary, "--peers", c.peersFile, "--data-dir", c.dirs[name], name)
	p.stderr.waitLine(tb, "listening on "+net.JoinHostPort("::", strconv.Itoa(c.ports[name])))
	return p
}
