package main

// Benchmarks: how close p2pchat comes to raw TCP, and to the least a
// durable chat can cost.
//
// Every figure is measured next to a baseline in the same run. The baseline
// is testdata/baseline, which has two relays:
//
//   - the plain relay, the simplest honest line relay: one process reads
//     lines from stdin with bufio and writes each, as it comes, to a plain
//     TCP connection on loopback; the other reads them and prints each to
//     stdout;
//   - the durable relay (BenchmarkWarmLatency and BenchmarkThroughput), the
//     least any chat with p2pchat's promises can cost: the same two
//     processes over mutual TLS 1.3 (self-signed Ed25519 certificates), the
//     receiver appending every batch of lines it has read to a file, one
//     fdatasync per batch, before printing it and acknowledging each line,
//     the sender appending and syncing what it sent while it is on the
//     wire.
//
// They get the same message sizes, the same pipes and the same harness as
// p2pchat. Each benchmark reports its figures with b.ReportMetric (ns/op is
// suppressed: it means nothing here) and logs a table
//
//	measure | p2pchat | baseline | ratio | target | met
//
// whose header names the CPU. BenchmarkHistory (history_bench_test.go)
// compares an instance holding a long history with one holding none. The
// benchmarks' harness is in bench_harness_test.go, their measures and
// reports in bench_measure_test.go.
//
// Run them all and print the tables (the README's figures come from this):
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m .
//
// CI runs them small, in about two minutes:
//
//	P2PCHAT_BENCH_MESSAGES=2000 P2PCHAT_BENCH_IDLE=2s go test -run '^$' -bench . -benchtime 1x .
//
// Nothing here fails on a timing: a target is reported as target-met 1 or
// 0 (where there are several targets, target-met is 1 when all are met, and
// each has its own metric too). Sample counts are fixed (below) and
// multiplied by b.N where a larger -benchtime makes sense; -benchtime 1x is
// the intended use.

import (
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"p2pchat/network"
)

// Sizes of the measurements.
const (
	// warmSamples messages, one at a time, per b.N, for the warm latency.
	warmSamples = 2000
	// syncSamples appends, each followed by fdatasync, to price one disk sync.
	syncSamples = 200
	// firstSamples first messages, each on a new connection, per b.N.
	firstSamples = 200
	// firstIdleTimeout is the --idle-timeout that closes the connection
	// between two first messages; the baseline pauses as long.
	firstIdleTimeout = 50 * time.Millisecond
	// manyFriends friends hold a connection to one instance.
	manyFriends = 1000
	// hubSamples messages, one at a time, for the latency to that instance.
	hubSamples = 1000
	// connectParallel bounds the friends connecting at once: well below the
	// 16 unauthenticated connections an instance lets one host hold.
	connectParallel = 8
	// setupParallel bounds the friends created at once (keys, databases).
	setupParallel = 16
	// messageChars is the size of a throughput message: the longest allowed.
	messageChars = network.MaxMessageRunes
	// settle is how long instances are left alone after their last message
	// before their idle CPU is measured.
	settle = time.Second
)

// Targets against the durable relay.
const (
	// durableLatencyFactor: p2pchat's warm latency p50 at most this many
	// times the durable relay's.
	durableLatencyFactor = 1.3
	// durableThroughputFactor: p2pchat's throughput at least this many
	// times the durable relay's.
	durableThroughputFactor = 0.8
)

// Defaults of the sizes CI shrinks through the environment.
const (
	defaultMessages = 100_000          // P2PCHAT_BENCH_MESSAGES
	defaultIdle     = 30 * time.Second // P2PCHAT_BENCH_IDLE
)

// BenchmarkWarmLatency: a line written to a running instance's stdin until
// the friend's instance prints it, with the connection already open (one
// warm-up message first), one message at a time. The plain relay, the
// durable relay, p2pchat and one append with fdatasync in user_2's data
// directory are sampled in turns. Targets: p2pchat's p50 at most twice the
// plain relay's plus one fdatasync, which a durable message cannot avoid
// (each side commits before going on); and at most 1.3 times the durable
// relay's.
func BenchmarkWarmLatency(b *testing.B) {
	n := warmSamples * b.N
	hotSync := fdatasyncCost(b, b.TempDir(), syncSamples)

	bs, br := startBaseline(b, "send")
	ds, dr := startDurable(b)
	c := newChat(b, "user_1", "user_2")
	u1 := c.launch(b, "user_1")
	u2 := c.launch(b, "user_2")
	syncFile := openSyncFile(b, c.dirs["user_2"])
	var sent, baseSent, durableSent int
	samples := inTurns(n,
		func() time.Duration {
			baseSent++
			return latencies(b, 1, br.stdout, nil, func(int) { bs.writeLine(b, fmt.Sprintf("user_2/warm %d", baseSent)) })[0]
		},
		func() time.Duration {
			durableSent++
			return latencies(b, 1, dr.stdout, nil, func(int) { ds.writeLine(b, fmt.Sprintf("user_2/warm %d", durableSent)) })[0]
		},
		func() time.Duration {
			sent++
			return latencies(b, 1, u2.stdout, nil, func(int) { u1.writeLine(b, fmt.Sprintf("user_2/warm %d", sent)) })[0]
		},
		func() time.Duration { return syncOnce(b, syncFile) },
	)
	base, durable, got, syncs := samples[0], samples[1], samples[2], samples[3]
	if want := messageFrom("user_1", fmt.Sprintf("warm %d", sent)); u2.stdout.lastLine() != want {
		b.Fatalf("user_2's last line is %q, want %q", u2.stdout.lastLine(), want)
	}
	if want := fmt.Sprintf("user_2/warm %d", durableSent); dr.stdout.lastLine() != want {
		b.Fatalf("the durable relay's last line is %q, want %q", dr.stdout.lastLine(), want)
	}
	syncCost := percentile(syncs, 50)

	p50, p99 := percentile(got, 50), percentile(got, 99)
	bp50, bp99 := percentile(base, 50), percentile(base, 99)
	dp50, dp99 := percentile(durable, 50), percentile(durable, 99)
	target := 2*bp50 + syncCost
	durableTarget := time.Duration(durableLatencyFactor * float64(dp50))
	met, durableMet := p50 <= target, p50 <= durableTarget
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(micros(p50), "p50-µs")
	b.ReportMetric(micros(p99), "p99-µs")
	b.ReportMetric(micros(bp50), "baseline-p50-µs")
	b.ReportMetric(micros(bp99), "baseline-p99-µs")
	b.ReportMetric(micros(dp50), "durable-p50-µs")
	b.ReportMetric(micros(dp99), "durable-p99-µs")
	b.ReportMetric(micros(syncCost), "fdatasync-µs")
	b.ReportMetric(micros(hotSync), "fdatasync-hot-µs")
	b.ReportMetric(ratio(p50, bp50), "ratio")
	b.ReportMetric(ratio(p50, dp50), "durable-ratio")
	b.ReportMetric(boolMetric(met), "baseline-target-met")
	b.ReportMetric(boolMetric(durableMet), "durable-target-met")
	b.ReportMetric(boolMetric(met && durableMet), "target-met")
	logTable(b, fmt.Sprintf("warm latency, stdin to friend's stdout, %d messages one at a time, connection open; baseline: the plain relay, or the durable TLS relay where the row says so", n),
		figure{"p50", fmtDur(p50), fmtDur(bp50), fmtRatio(ratio(p50, bp50)),
			fmt.Sprintf("<= 2 x baseline + fdatasync = %s", fmtDur(target)), yesNo(met)},
		figure{"p50 vs durable relay", fmtDur(p50), fmtDur(dp50), fmtRatio(ratio(p50, dp50)),
			fmt.Sprintf("<= %.1f x durable = %s", durableLatencyFactor, fmtDur(durableTarget)), yesNo(durableMet)},
		figure{"p99", fmtDur(p99), fmtDur(bp99), fmtRatio(ratio(p99, bp99)), "", ""},
		figure{"p99 vs durable relay", fmtDur(p99), fmtDur(dp99), fmtRatio(ratio(p99, dp99)), "", ""},
		figure{"fdatasync, in turns with the messages", fmtDur(syncCost), "", "", "", ""},
		figure{"fdatasync, " + strconv.Itoa(syncSamples) + " back to back", fmtDur(hotSync), "", "", "", ""},
	)
}

// BenchmarkThroughput: P2PCHAT_BENCH_MESSAGES (100,000) messages of exactly
// 250 characters piped into user_1's stdin as fast as the pipe takes them,
// until user_2 has printed all of them. The connection is open (one warm-up
// message first). The plain relay, the durable relay, the durable relay
// with -coalesce (its sender writes the lines it has read together in one
// write: for information, no target) and p2pchat run one after the other,
// each pair stopped before the next starts (a pair left running would do
// work of its own after a burst, such as p2pchat's checkpoint). Targets:
// at least half the plain relay's rate, and at least 0.8 times the durable
// relay's.
func BenchmarkThroughput(b *testing.B) {
	n := envInt(b, "P2PCHAT_BENCH_MESSAGES", defaultMessages) * b.N
	input, last := throughputInput(n)

	bs, br := startBaseline(b, "send")
	bs.writeLine(b, "user_2/warm-up")
	br.stdout.waitLines(b, 1)
	baseTook := pipeThrough(b, bs, br.stdout, input, n)
	if want := "user_2/" + last; br.stdout.lastLine() != want {
		b.Fatalf("the baseline's last line is %q, want %q", br.stdout.lastLine(), want)
	}
	bs.kill()
	br.kill()

	durable := func(sendFlags ...string) time.Duration {
		ds, dr := startDurable(b, sendFlags...)
		ds.writeLine(b, "user_2/warm-up")
		dr.stdout.waitLines(b, 1)
		took := pipeThrough(b, ds, dr.stdout, input, n)
		if want := "user_2/" + last; dr.stdout.lastLine() != want {
			b.Fatalf("the durable relay's last line is %q, want %q", dr.stdout.lastLine(), want)
		}
		ds.kill()
		dr.kill()
		return took
	}
	durableTook := durable()
	coalescedTook := durable("-coalesce")

	c := newChat(b, "user_1", "user_2")
	u1 := c.launch(b, "user_1")
	u2 := c.launch(b, "user_2")
	u1.writeLine(b, "user_2/warm-up")
	u2.stdout.waitLines(b, 1)
	took := pipeThrough(b, u1, u2.stdout, input, n)
	if want := messageFrom("user_1", last); u2.stdout.lastLine() != want {
		b.Fatalf("user_2's last line is %q, want %q", u2.stdout.lastLine(), want)
	}

	rate := float64(n) / took.Seconds()
	baseRate := float64(n) / baseTook.Seconds()
	durableRate := float64(n) / durableTook.Seconds()
	coalescedRate := float64(n) / coalescedTook.Seconds()
	met := rate >= baseRate/2
	durableMet := rate >= durableThroughputFactor*durableRate
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rate, "msgs/s")
	b.ReportMetric(baseRate, "baseline-msgs/s")
	b.ReportMetric(durableRate, "durable-msgs/s")
	b.ReportMetric(coalescedRate, "durable-coalesced-msgs/s")
	b.ReportMetric(rate/baseRate, "ratio")
	b.ReportMetric(rate/durableRate, "durable-ratio")
	b.ReportMetric(boolMetric(met), "baseline-target-met")
	b.ReportMetric(boolMetric(durableMet), "durable-target-met")
	b.ReportMetric(boolMetric(met && durableMet), "target-met")
	logTable(b, fmt.Sprintf("throughput, %d messages of %d characters piped into stdin, until all printed; baseline: the plain relay, or the durable TLS relay where the row says so", n, messageChars),
		figure{"messages/s", fmt.Sprintf("%.0f", rate), fmt.Sprintf("%.0f", baseRate), fmtRatio(rate / baseRate), ">= 0.5 x baseline", yesNo(met)},
		figure{"messages/s vs durable relay", fmt.Sprintf("%.0f", rate), fmt.Sprintf("%.0f", durableRate), fmtRatio(rate / durableRate),
			fmt.Sprintf(">= %.1f x durable", durableThroughputFactor), yesNo(durableMet)},
		figure{"messages/s vs durable relay, -coalesce", fmt.Sprintf("%.0f", rate), fmt.Sprintf("%.0f", coalescedRate), fmtRatio(rate / coalescedRate), "", ""},
		figure{"total time", fmtDur(took), fmtDur(baseTook), fmtRatio(ratio(took, baseTook)), "", ""},
		figure{"total time vs durable relay", fmtDur(took), fmtDur(durableTook), fmtRatio(ratio(took, durableTook)), "", ""},
	)
}

// BenchmarkFirstMessage: a line written to stdin until the friend prints
// it, with no connection open: dial, TLS handshake, hello, delivery. User_1
// runs with --idle-timeout 50ms and each sample waits for its log to say
// the previous connection was closed for idleness. The baseline connects
// anew for each line (send-each) after the same pause. Target: p50 < 5 ms.
func BenchmarkFirstMessage(b *testing.B) {
	n := firstSamples * b.N

	bs, br := startBaseline(b, "send-each")
	pause := func(int) { time.Sleep(firstIdleTimeout) }
	base := latencies(b, n, br.stdout, pause, func(i int) { bs.writeLine(b, fmt.Sprintf("user_2/first %d", i)) })
	bs.kill()
	br.kill()

	c := newChat(b, "user_1", "user_2")
	u1 := c.launch(b, "user_1", "--idle-timeout", firstIdleTimeout.String())
	u2 := c.launch(b, "user_2")
	logw := watchLog(b, filepath.Join(c.dirs["user_1"], "p2pchat.log"))
	closedIdle := func(l string) bool {
		return strings.Contains(l, `msg="client connection closed"`) && strings.Contains(l, "reason=idle")
	}
	up := func(l string) bool { return strings.Contains(l, `msg="client connection up"`) }
	waitClosed := func(i int) { logw.waitCount(b, "the connection to close for idleness", closedIdle, i) }
	got := latencies(b, n, u2.stdout, waitClosed, func(i int) { u1.writeLine(b, fmt.Sprintf("user_2/first %d", i)) })
	if ups := logw.count(up); ups != n {
		b.Fatalf("user_1's log says its connection came up %d times for %d first messages", ups, n)
	}

	p50, p99 := percentile(got, 50), percentile(got, 99)
	bp50, bp99 := percentile(base, 50), percentile(base, 99)
	met := p50 < 5*time.Millisecond
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(millis(p50), "p50-ms")
	b.ReportMetric(millis(p99), "p99-ms")
	b.ReportMetric(millis(bp50), "baseline-p50-ms")
	b.ReportMetric(millis(bp99), "baseline-p99-ms")
	b.ReportMetric(ratio(p50, bp50), "ratio")
	b.ReportMetric(boolMetric(met), "target-met")
	logTable(b, fmt.Sprintf("first message, stdin to friend's stdout on a new connection (dial, TLS 1.3, hello), %d samples", n),
		figure{"p50", fmtDur(p50), fmtDur(bp50), fmtRatio(ratio(p50, bp50)), "< 5ms", yesNo(met)},
		figure{"p99", fmtDur(p99), fmtDur(bp99), fmtRatio(ratio(p99, bp99)), "", ""},
	)
}

// BenchmarkIdleCPU: three instances with their connections open (every
// ordered pair exchanged a message), left alone for P2PCHAT_BENCH_IDLE
// (30s) after a settling second: the CPU time each used, as utime+stime in
// clock ticks of 10ms (the target: 0), and, because a tick is coarse (the
// counter can step on a few µs of work that completes a 10ms total), also
// exactly, with the number of times its threads were scheduled (wakeups),
// from /proc/PID/task/*/schedstat. The baseline pair, connected, idles
// over the same window.
func BenchmarkIdleCPU(b *testing.B) {
	window := envDuration(b, "P2PCHAT_BENCH_IDLE", defaultIdle)
	names := []string{"user_1", "user_2", "user_3"}
	c := newChat(b, names...)
	var procs []*proc
	for _, name := range names {
		procs = append(procs, c.launch(b, name))
	}
	for _, from := range procs {
		for _, to := range names {
			if to != from.label {
				from.writeLine(b, to+"/hello from "+from.label)
			}
		}
	}
	for _, p := range procs {
		p.stdout.waitLines(b, len(names)-1)
	}
	bs, br := startBaseline(b, "send")
	bs.writeLine(b, "hello")
	br.stdout.waitLines(b, 1)

	time.Sleep(settle)
	all := append(slices.Clone(procs), bs, br)
	before := make([]cpuUse, len(all))
	for i, p := range all {
		before[i] = cpuUsed(b, p)
	}
	time.Sleep(window)
	used := make([]cpuUse, len(all))
	for i, p := range all {
		used[i] = cpuUsed(b, p).minus(before[i])
	}
	ours, theirs := used[:len(procs)], used[len(procs):]
	most, mean := busiest(ours), meanUse(ours)
	baseMost, baseMean := busiest(theirs), meanUse(theirs)
	met := most.ticks == 0
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(mean.ticks, "ticks/instance")
	b.ReportMetric(float64(most.ticks), "ticks-max")
	b.ReportMetric(float64(baseMost.ticks), "baseline-ticks-max")
	b.ReportMetric(mean.cpu, "cpu-µs/instance")
	b.ReportMetric(baseMean.cpu, "baseline-cpu-µs/process")
	b.ReportMetric(mean.wakeups, "wakeups/instance")
	b.ReportMetric(baseMean.wakeups, "baseline-wakeups/process")
	b.ReportMetric(window.Seconds(), "window-s")
	b.ReportMetric(boolMetric(met), "target-met")
	each := func(us []cpuUse) string {
		var parts []string
		for _, u := range us {
			parts = append(parts, u.String())
		}
		return strings.Join(parts, "; ")
	}
	logTable(b, fmt.Sprintf("idle CPU over %v, connections open; p2pchat: %s; baseline: %s", window, each(ours), each(theirs)),
		figure{"ticks (10ms), mean / most", fmt.Sprintf("%.2f / %d", mean.ticks, most.ticks), fmt.Sprintf("%.2f / %d", baseMean.ticks, baseMost.ticks), "", "0", yesNo(met)},
		figure{"CPU time, mean", fmt.Sprintf("%.0fµs", mean.cpu), fmt.Sprintf("%.0fµs", baseMean.cpu), "", "", ""},
		figure{"wakeups, mean", fmt.Sprintf("%.1f", mean.wakeups), fmt.Sprintf("%.1f", baseMean.wakeups), "", "", ""},
	)
}

// BenchmarkMemory: the resident memory of an instance right after start;
// of an instance whose table has 1,000 friends, all 1,000 holding a
// connection to it; and the warm latency to that instance from one of them,
// against the same with a table of 3 (the instance and 2 connected
// friends), both running, sampled in turns. The friends are network nodes
// inside this process, each with its own identity and database, sending
// through Node.Send. The baseline is the receiving relay with as many raw
// TCP connections, written to from this process, sampled the same way.
// Targets: 20 MB at start, 100 MB with 1,000 connections, latency within
// 10% of the 3-peer one. MB here are MiB.
func BenchmarkMemory(b *testing.B) {
	// Go raises the soft limit on descriptors to the hard one at start. The
	// friends need about four each here (listener, connection, database,
	// its .shown file), the baseline's clients one each.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if need := 6*manyFriends + 256; lim.Cur < uint64(need) {
		b.Fatalf("%d file descriptors allowed (ulimit -n), %d needed: raise the limit (ulimit -Hn is %d)", lim.Cur, need, lim.Max)
	}
	c := newChat(b, "user_1", "user_2", "user_3")
	u1 := c.launch(b, "user_1")
	rssStart := rssMB(b, u1)
	u1.kill()
	br := startBaselineRecv(b)
	baseRSSStart := rssMB(b, br)
	br.kill()

	// The latencies over 2 and over 1,000 connections are sampled in
	// turns, so that the machine's drift during the run touches both alike.
	baseFew, baseMany := startBaselineHub(b, 2), startBaselineHub(b, manyFriends)
	baseLat := inTurns(hubSamples, baseFew.sample(b), baseMany.sample(b))
	baseFewLat, baseManyLat := baseLat[0], baseLat[1]
	baseFewRSS, baseManyRSS := rssMB(b, baseFew.recv), rssMB(b, baseMany.recv)
	baseFew.close()
	baseMany.close()

	few := startHub(b, 2)
	many := startHub(b, manyFriends)
	manyRSS := rssMB(b, many.proc)
	lat := inTurns(hubSamples, few.sample(b), many.sample(b))
	fewLat, manyLat := lat[0], lat[1]
	fewRSS := rssMB(b, few.proc)
	manyRSS = max(manyRSS, rssMB(b, many.proc))
	if open := many.inbound(b); open != manyFriends {
		b.Fatalf("the instance has %d inbound connections open, want %d", open, manyFriends)
	}
	few.close()
	many.close()

	fewP50, manyP50 := percentile(fewLat, 50), percentile(manyLat, 50)
	fewP99, manyP99 := percentile(fewLat, 99), percentile(manyLat, 99)
	bFewP50, bManyP50 := percentile(baseFewLat, 50), percentile(baseManyLat, 50)
	startMet, manyMet := rssStart <= 20, manyRSS <= 100
	latMet := ratio(manyP50, fewP50) <= 1.10
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(rssStart, "rss-start-MB")
	b.ReportMetric(baseRSSStart, "baseline-rss-start-MB")
	b.ReportMetric(manyRSS, "rss-1000-MB")
	b.ReportMetric(baseManyRSS, "baseline-rss-1000-MB")
	b.ReportMetric(micros(fewP50), "p50-3peer-µs")
	b.ReportMetric(micros(manyP50), "p50-1000-µs")
	b.ReportMetric(micros(fewP99), "p99-3peer-µs")
	b.ReportMetric(micros(manyP99), "p99-1000-µs")
	b.ReportMetric(ratio(manyP50, fewP50), "latency-ratio")
	b.ReportMetric(ratio(bManyP50, bFewP50), "baseline-latency-ratio")
	b.ReportMetric(boolMetric(startMet && manyMet && latMet), "target-met")
	mb := func(v float64) string { return fmt.Sprintf("%.1f MB", v) }
	logTable(b, fmt.Sprintf("memory (VmRSS) and latency with %d connections; latency: %d messages one at a time from an in-process friend", manyFriends, hubSamples),
		figure{"RSS right after start", mb(rssStart), mb(baseRSSStart), fmtRatio(rssStart / baseRSSStart), "<= 20 MB", yesNo(startMet)},
		figure{"RSS, 3 peers connected", mb(fewRSS), mb(baseFewRSS), fmtRatio(fewRSS / baseFewRSS), "", ""},
		figure{fmt.Sprintf("RSS, %d friends connected", manyFriends), mb(manyRSS), mb(baseManyRSS), fmtRatio(manyRSS / baseManyRSS), "<= 100 MB", yesNo(manyMet)},
		figure{"latency p50 / p99, 3 peers", fmtDur(fewP50) + " / " + fmtDur(fewP99), fmtDur(bFewP50) + " / " + fmtDur(percentile(baseFewLat, 99)), fmtRatio(ratio(fewP50, bFewP50)), "", ""},
		figure{fmt.Sprintf("latency p50 / p99, %d connected", manyFriends), fmtDur(manyP50) + " / " + fmtDur(manyP99), fmtDur(bManyP50) + " / " + fmtDur(percentile(baseManyLat, 99)), fmtRatio(ratio(manyP50, bManyP50)), "", ""},
		figure{fmt.Sprintf("latency p50, %d vs 3 peers", manyFriends), fmtRatio(ratio(manyP50, fewP50)), fmtRatio(ratio(bManyP50, bFewP50)), "", "<= 1.10", yesNo(latMet)},
	)
}

// The baseline program.

var (
	baselineOnce sync.Once
	baselinePath string
	baselineErr  error
)

// baselineBinary builds testdata/baseline once per run, next to the p2pchat
// binary that TestMain built and removes at the end.
func baselineBinary(tb testing.TB) string {
	tb.Helper()
	baselineOnce.Do(func() {
		path := filepath.Join(filepath.Dir(binary), "baseline")
		out, err := exec.Command("go", "build", "-o", path, "./testdata/baseline").CombinedOutput()
		if err != nil {
			baselineErr = fmt.Errorf("go build ./testdata/baseline: %v\n%s", err, out)
			return
		}
		baselinePath = path
	})
	if baselineErr != nil {
		tb.Fatal(baselineErr)
	}
	return baselinePath
}

// startBaselineRecv runs the baseline's receiving half on a free port.
func startBaselineRecv(tb testing.TB) *proc {
	tb.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePorts(tb, 1)[0]))
	recv := startProc(tb, "baseline recv", baselineBinary(tb), "recv", addr)
	recv.stderr.waitLine(tb, "listening on "+addr)
	return recv
}

// startBaseline runs the baseline pair: a receiver, and a sender in mode
// ("send" keeps one connection, "send-each" connects for every line).
func startBaseline(tb testing.TB, mode string) (send, recv *proc) {
	tb.Helper()
	recv = startBaselineRecv(tb)
	addr := strings.TrimPrefix(recv.stderr.snapshot()[0], "listening on ")
	send = startProc(tb, "baseline "+mode, baselineBinary(tb), mode, addr)
	if mode == "send" {
		send.stderr.waitLine(tb, "connected to "+addr)
	} else {
		send.stderr.waitLine(tb, "ready to connect to "+addr)
	}
	return send, recv
}

// startDurable runs the durable relay's pair, each half with a data
// directory of its own: a receiver on a free port, and a sender connected
// to it (TLS handshake done), with sendFlags.
func startDurable(tb testing.TB, sendFlags ...string) (send, recv *proc) {
	tb.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePorts(tb, 1)[0]))
	recv = startProc(tb, "durable recv", baselineBinary(tb), "-dir", tb.TempDir(), "durable-recv", addr)
	recv.stderr.waitLine(tb, "listening on "+addr)
	args := append(append([]string{"-dir", tb.TempDir()}, sendFlags...), "durable-send", addr)
	send = startProc(tb, "durable send", baselineBinary(tb), args...)
	send.stderr.waitLine(tb, "connected to "+addr)
	return send, recv
}

// baselineHub is a baseline receiver with k raw TCP clients in this
// process, the yardstick for an instance with k friends connected.
type baselineHub struct {
	recv  *proc
	conns []net.Conn
}

// startBaselineHub connects k clients to a baseline receiver and writes
// one line on each.
func startBaselineHub(tb testing.TB, k int) *baselineHub {
	tb.Helper()
	h := &baselineHub{recv: startBaselineRecv(tb)}
	tb.Cleanup(h.close)
	addr := strings.TrimPrefix(h.recv.stderr.snapshot()[0], "listening on ")
	for i := range k {
		c, err := net.DialTimeout("tcp", addr, network.DialTimeout)
		if err != nil {
			tb.Fatalf("connection %d to the baseline: %v", i, err)
		}
		h.conns = append(h.conns, c)
		if _, err := fmt.Fprintf(c, "hello from %d\n", i); err != nil {
			tb.Fatal(err)
		}
	}
	h.recv.stdout.waitLines(tb, k)
	return h
}

// sample returns a function that takes one latency sample: a line written
// on the first connection until the receiver prints it.
func (h *baselineHub) sample(tb testing.TB) func() time.Duration {
	i := 0
	return func() time.Duration {
		i++
		return latencies(tb, 1, h.recv.stdout, nil, func(int) {
			if _, err := fmt.Fprintf(h.conns[0], "warm %d\n", i); err != nil {
				tb.Fatal(err)
			}
		})[0]
	}
}

func (h *baselineHub) close() {
	for _, c := range h.conns {
		c.Close()
	}
	h.conns = nil
	h.recv.kill()
}
