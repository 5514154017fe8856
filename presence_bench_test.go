package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkQueueOnFriendStart: user_1 has a message queued for user_2, who
// is away, and is in a backoff of 2 s or more; user_2 starts. Each
// sample is the time from user_2's fork and exec until user_2 prints the
// message: user_2 says it is back (one connection to each friend it talked
// with), and user_1 sends what it queued at once, not after its backoff
// (up to 10 s). Every sample must have come that way: user_1's log says
// so. The baseline is user_2's start to its greeting, in the same runs:
// nothing can arrive sooner. Target: within 1 s (the issue's "about 1 s
// after its friend starts").
//
//	go test -run '^$' -bench BenchmarkQueueOnFriendStart -benchtime 1x .
//	P2PCHAT_BENCH_START_SAMPLES=30 go test -run '^$' -bench BenchmarkQueueOnFriendStart -benchtime 1x .
func BenchmarkQueueOnFriendStart(b *testing.B) {
	n := startSamples(b) * b.N
	c := newChat(b, "user_1", "user_2")
	u1 := c.launch(b, "user_1")
	logw := watchLog(b, filepath.Join(c.dirs["user_1"], "p2pchat.log"))
	// A friend's connections send the queue at once at most once a second
	// (a storm of them must not be a storm of dials): a backoff of 2 s
	// comes 1.75 s after the last failure, so every sample is past it.
	const longBackoffMin = 2 * time.Second
	retryIn := regexp.MustCompile(`retry_in=(\S+)`)
	longBackoff := func(l string) bool {
		m := retryIn.FindStringSubmatch(l)
		if !strings.Contains(l, `msg="cannot reach friend"`) || m == nil {
			return false
		}
		d, err := time.ParseDuration(m[1])
		return err == nil && d >= longBackoffMin
	}
	kicked := func(l string) bool {
		return strings.Contains(l, `msg="friend connected to us: sending what waits now, not after the backoff"`)
	}

	delivered := make([]time.Duration, n)
	greeted := make([]time.Duration, n)
	for i := range n {
		backoffs := logw.count(longBackoff)
		u1.writeLine(b, fmt.Sprintf("user_2/while you were away %d", i))
		logw.waitCount(b, "user_1 to back off for 2 s", longBackoff, backoffs+1)

		u2 := c.launch(b, "user_2")
		greeted[i] = time.Since(u2.started)
		delivered[i] = u2.stdout.waitLines(b, 1).Sub(u2.started)
		if got, want := u2.stdout.lastLine(), messageFrom("user_1", fmt.Sprintf("while you were away %d", i)); got != want {
			b.Fatalf("user_2 printed %q, want %q", got, want)
		}
		logw.waitCount(b, "user_1 to say user_2's connection sent the queue", kicked, i+1)
		u2.cmd.Process.Signal(syscall.SIGTERM)
		<-u2.exited
	}

	p50, worst := percentile(delivered, 50), percentile(delivered, 100)
	gp50, gworst := percentile(greeted, 50), percentile(greeted, 100)
	met := worst < time.Second
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(millis(p50), "p50-ms")
	b.ReportMetric(millis(worst), "max-ms")
	b.ReportMetric(millis(gp50), "greeting-p50-ms")
	b.ReportMetric(ratio(p50, gp50), "ratio")
	b.ReportMetric(boolMetric(met), "target-met")
	logTable(b, fmt.Sprintf("a queue reaching its friend, from the friend's start (fork and exec) to the message printed, %d samples", n),
		figure{"p50", fmtDur(p50), "greeting " + fmtDur(gp50), fmtRatio(ratio(p50, gp50)), "", ""},
		figure{"max", fmtDur(worst), "greeting " + fmtDur(gworst), fmtRatio(ratio(worst, gworst)), "< 1s", yesNo(met)},
	)
}

// startSamples is how many starts BenchmarkQueueOnFriendStart times: 10,
// or 3 in CI's small run (P2PCHAT_BENCH_MESSAGES set), each taking about
// 2.5 s.
func startSamples(tb testing.TB) int {
	tb.Helper()
	if os.Getenv("P2PCHAT_BENCH_START_SAMPLES") == "" && os.Getenv("P2PCHAT_BENCH_MESSAGES") != "" {
		return 3
	}
	return envInt(tb, "P2PCHAT_BENCH_START_SAMPLES", 10)
}
