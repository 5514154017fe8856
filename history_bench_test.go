package main

// BenchmarkHistory: what a long history costs an instance, measured
// through the binary alone (its command line, stdin and stderr), so that it
// holds whatever the store is.

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Sizes and targets of the history benchmark.
const (
	// defaultHistoryMessages messages are sent before the instances are
	// restarted (P2PCHAT_BENCH_HISTORY; without it, ten times
	// P2PCHAT_BENCH_MESSAGES when that is set, as in CI).
	defaultHistoryMessages = 1_000_000
	// historyChars is the length of each of those messages.
	historyChars = 64
	// historyStarts timed starts of each instance per b.N, after a first
	// one that is reported on its own.
	historyStarts = 5
	// historyQueries /history commands typed after each start.
	historyQueries = 3
	// historyShown is how many lines /history FRIEND shows: the shell's
	// default count.
	historyShown = 20
	// historyRSSSettle is how long an instance is left alone after its
	// /history commands before its memory is read once more.
	historyRSSSettle = 200 * time.Millisecond
	// stopTimeout bounds a clean stop (SIGTERM to exit).
	stopTimeout = time.Minute

	startTarget   = 300 * time.Millisecond // start to prompt, p50
	historyTarget = 10 * time.Millisecond  // /history FRIEND, p50
	rssTargetMB   = 5.0                    // above an instance with no messages
)

// BenchmarkHistory: user_1 sends user_2 P2PCHAT_BENCH_HISTORY (1,000,000)
// messages of 64 characters, piped into its stdin as in
// BenchmarkThroughput, until user_2 has shown them all and user_1's
// /peers says none is waiting; both are stopped with SIGTERM. Then each
// of them, and user_3, who has no messages (the baseline column), is
// started again and again, in turns, one instance running at a time, with
// stdin a pipe:
//
//   - start to prompt: from the fork and exec of `p2pchat NAME` until its
//     greeting ("... listening on ADDR ...") is read from its stderr;
//   - /history FRIEND, typed on stdin: until the last of the lines it
//     prints on stderr is read (the last 20 messages; "No messages with
//     FRIEND yet." for user_3);
//   - VmRSS at the prompt, and again after the /history commands and a
//     pause of 200ms, with RssAnon then (VmRSS less mapped files: a
//     database that maps its file counts the pages it touched in VmRSS).
//
// Each instance is stopped with SIGTERM before the next one starts. The
// first start of each after the messages were sent is reported on its own;
// the p50 and the largest value are over the starts after it. Targets:
// start to prompt p50 < 300ms and /history p50 < 10ms for the receiver and
// the sender; RSS, both readings, at most 5 MB above user_3's.
func BenchmarkHistory(b *testing.B) {
	n := historyCount(b)
	c := newChat(b, "user_1", "user_2", "user_3")

	// Fill the history by sending.
	input, text := historyInput(n)
	u1 := c.launch(b, "user_1")
	u2 := c.launch(b, "user_2")
	fillTook := pipeThrough(b, u1, u2.stdout, input, n)
	if want := messageFrom("user_1", text(n-1)); u2.stdout.lastLine() != want {
		b.Fatalf("user_2's last line is %q, want %q", u2.stdout.lastLine(), want)
	}
	waitNoneWaiting(b, u1, "user_2")
	senderStop := stopProc(b, u1)
	receiverStop := stopProc(b, u2)
	receiverMB, senderMB := dirMB(b, c.dirs["user_2"]), dirMB(b, c.dirs["user_1"])

	shown := min(historyShown, n)
	receiver := &historySubject{label: "receiver", name: "user_2", friend: "user_1",
		lines: shown, first: "user_1 → you: " + text(n-shown), last: "user_1 → you: " + text(n-1)}
	sender := &historySubject{label: "sender", name: "user_1", friend: "user_2",
		lines: shown, first: "you → user_2: " + text(n-shown), last: "you → user_2: " + text(n-1) + "  [delivered]"}
	empty := &historySubject{label: "no messages", name: "user_3", friend: "user_1",
		lines: 1, first: "No messages with user_1 yet.", last: "No messages with user_1 yet."}
	subjects := []*historySubject{receiver, sender, empty}
	for i := range 1 + historyStarts*b.N {
		for j := range subjects {
			subjects[(i+j)%len(subjects)].sample(b, c)
		}
	}
	emptyMB := dirMB(b, c.dirs["user_3"])

	startMet := receiver.startP50() < startTarget && sender.startP50() < startTarget
	historyMet := receiver.queryP50() < historyTarget && sender.queryP50() < historyTarget
	rssDelta := max(receiver.rssMax()-empty.rssMax(), sender.rssMax()-empty.rssMax())
	laterDelta := max(receiver.laterMax()-empty.laterMax(), sender.laterMax()-empty.laterMax())
	rssMet := rssDelta <= rssTargetMB && laterDelta <= rssTargetMB
	fillRate := float64(n) / fillTook.Seconds()

	b.ReportMetric(0, "ns/op")
	b.ReportMetric(float64(n), "messages")
	b.ReportMetric(millis(receiver.startP50()), "start-p50-ms")
	b.ReportMetric(millis(sender.startP50()), "sender-start-p50-ms")
	b.ReportMetric(millis(empty.startP50()), "empty-start-p50-ms")
	b.ReportMetric(millis(receiver.firstStart), "first-start-ms")
	b.ReportMetric(millis(sender.firstStart), "sender-first-start-ms")
	b.ReportMetric(millis(receiver.queryP50()), "history-p50-ms")
	b.ReportMetric(millis(sender.queryP50()), "sender-history-p50-ms")
	b.ReportMetric(millis(empty.queryP50()), "empty-history-p50-ms")
	b.ReportMetric(receiver.rssMax(), "rss-MB")
	b.ReportMetric(sender.rssMax(), "sender-rss-MB")
	b.ReportMetric(empty.rssMax(), "empty-rss-MB")
	b.ReportMetric(receiver.anonMax(), "rss-anon-MB")
	b.ReportMetric(empty.anonMax(), "empty-rss-anon-MB")
	b.ReportMetric(max(rssDelta, laterDelta), "rss-over-empty-MB")
	b.ReportMetric(receiverMB, "data-dir-MB")
	b.ReportMetric(fillRate, "fill-msgs/s")
	b.ReportMetric(boolMetric(startMet), "start-target-met")
	b.ReportMetric(boolMetric(historyMet), "history-target-met")
	b.ReportMetric(boolMetric(rssMet), "rss-target-met")
	b.ReportMetric(boolMetric(startMet && historyMet && rssMet), "target-met")

	mb := func(v float64) string { return fmt.Sprintf("%.1f MB", v) }
	pair := func(f func(d []time.Duration) time.Duration, get func(s *historySubject) []time.Duration) string {
		return fmtDur(f(get(receiver))) + " / " + fmtDur(f(get(sender)))
	}
	p50 := func(d []time.Duration) time.Duration { return percentile(d, 50) }
	most := func(d []time.Duration) time.Duration { return slices.Max(d) }
	starts := func(s *historySubject) []time.Duration { return s.starts }
	queries := func(s *historySubject) []time.Duration { return s.queries }
	ratios := func(a, b, base time.Duration) string {
		return fmtRatio(ratio(a, base)) + " / " + fmtRatio(ratio(b, base))
	}
	over := func(a, b, base float64) string { return fmt.Sprintf("%+.1f / %+.1f MB", a-base, b-base) }
	logTable(b, fmt.Sprintf("history: %d messages of %d characters sent user_1 to user_2 (%.0f messages/s, %s; SIGTERM to exit then took %s / %s), "+
		"then %d starts of each (after a first), one instance at a time, %d /history on each start; receiver / sender; baseline: user_3, who has no messages",
		n, historyChars, fillRate, fmtDur(fillTook), fmtDur(receiverStop), fmtDur(senderStop), historyStarts*b.N, historyQueries),
		figure{"start to prompt, p50", pair(p50, starts), fmtDur(empty.startP50()),
			ratios(receiver.startP50(), sender.startP50(), empty.startP50()), "< " + fmtDur(startTarget), yesNo(startMet)},
		figure{"start to prompt, max (first start after sending)", pair(most, starts) + " (" + fmtDur(receiver.firstStart) + " / " + fmtDur(sender.firstStart) + ")",
			fmtDur(most(empty.starts)) + " (its very first " + fmtDur(empty.firstStart) + ")", "", "", ""},
		figure{"/history FRIEND, p50", pair(p50, queries), fmtDur(empty.queryP50()),
			ratios(receiver.queryP50(), sender.queryP50(), empty.queryP50()), "< " + fmtDur(historyTarget), yesNo(historyMet)},
		figure{"/history FRIEND, max", pair(most, queries), fmtDur(most(empty.queries)), "", "", ""},
		figure{"RSS at the prompt, largest", mb(receiver.rssMax()) + " / " + mb(sender.rssMax()), mb(empty.rssMax()),
			over(receiver.rssMax(), sender.rssMax(), empty.rssMax()), fmt.Sprintf("<= +%.0f MB", rssTargetMB), yesNo(rssDelta <= rssTargetMB)},
		figure{"RSS after /history and " + historyRSSSettle.String() + ", largest (RssAnon)",
			mb(receiver.laterMax()) + " / " + mb(sender.laterMax()) + fmt.Sprintf(" (%.1f / %.1f)", receiver.anonMax(), sender.anonMax()),
			mb(empty.laterMax()) + fmt.Sprintf(" (%.1f)", empty.anonMax()),
			over(receiver.laterMax(), sender.laterMax(), empty.laterMax()), fmt.Sprintf("<= +%.0f MB", rssTargetMB), yesNo(laterDelta <= rssTargetMB)},
		figure{"data directory (du)", mb(receiverMB) + " / " + mb(senderMB), mb(emptyMB), "", "", ""},
	)
}

// historyCount is how many messages BenchmarkHistory sends.
func historyCount(tb testing.TB) int {
	tb.Helper()
	if os.Getenv("P2PCHAT_BENCH_HISTORY") == "" && os.Getenv("P2PCHAT_BENCH_MESSAGES") != "" {
		return envInt(tb, "P2PCHAT_BENCH_MESSAGES", defaultMessages) * (defaultHistoryMessages / defaultMessages)
	}
	return envInt(tb, "P2PCHAT_BENCH_HISTORY", defaultHistoryMessages)
}

// historyInput is n lines "user_2/TEXT", each TEXT historyChars long and
// numbered; text(i) is the i-th TEXT.
func historyInput(n int) (input []byte, text func(i int) string) {
	text = func(i int) string {
		num := fmt.Sprintf("history %07d ", i)
		return num + strings.Repeat("y", historyChars-len(num))
	}
	buf := make([]byte, 0, n*(len("user_2/")+historyChars+1))
	for i := range n {
		buf = append(buf, "user_2/"...)
		buf = append(buf, text(i)...)
		buf = append(buf, '\n')
	}
	return buf, text
}

// historySubject is one instance that BenchmarkHistory starts again and
// again, with what its /history shows and what was measured.
type historySubject struct {
	label, name, friend string
	lines               int    // how many lines /history friend shows
	first, last         string // what the first and the last of them contain

	firstStart time.Duration   // the first start
	starts     []time.Duration // the starts after it
	queries    []time.Duration // the /history commands after the first start
	rss, later []float64       // VmRSS in MiB at the prompt, and after the commands; after the first start
	anon       []float64       // RssAnon (the heap, stacks: not mapped files) after the commands
}

// sample starts s's instance, waits for the greeting, reads its memory,
// types /history, reads its memory again and stops it.
func (s *historySubject) sample(b *testing.B, c *chat) {
	b.Helper()
	p := startProc(b, s.name, binary, "--peers", c.peersFile, "--data-dir", c.dirs[s.name], s.name)
	p.stderr.waitLine(b, "listening on "+c.addr(s.name))
	start := time.Since(p.started)
	rss := rssMB(b, p)
	var queries []time.Duration
	for range historyQueries {
		queries = append(queries, s.history(b, p))
	}
	time.Sleep(historyRSSSettle)
	later, anon := rssMB(b, p), statusMB(b, p, "RssAnon")
	stopProc(b, p)
	if s.firstStart == 0 {
		s.firstStart = start
		return
	}
	s.starts = append(s.starts, start)
	s.queries = append(s.queries, queries...)
	s.rss = append(s.rss, rss)
	s.later = append(s.later, later)
	s.anon = append(s.anon, anon)
}

// history types /history FRIEND into p and returns the time until the last
// line it prints has been read; it checks the first and the last line.
func (s *historySubject) history(b *testing.B, p *proc) time.Duration {
	b.Helper()
	before := len(p.stderr.snapshot())
	t0 := time.Now()
	p.writeLine(b, "/history "+s.friend)
	lines := p.stderr.wait(b, fmt.Sprintf("the output of /history %s (a line containing %q)", s.friend, s.last), func(lines []string) bool {
		return slices.ContainsFunc(lines[before:], func(l string) bool { return strings.Contains(l, s.last) })
	})
	took := time.Since(t0)
	last := before + slices.IndexFunc(lines[before:], func(l string) bool { return strings.Contains(l, s.last) })
	if first := last - s.lines + 1; first < before || !strings.Contains(lines[first], s.first) {
		b.Fatalf("%s: /history %s printed\n%s\nwant %d lines, the first containing %q", s.name, s.friend, quoteLines(lines[before:last+1]), s.lines, s.first)
	}
	return took
}

func (s *historySubject) startP50() time.Duration { return percentile(s.starts, 50) }
func (s *historySubject) queryP50() time.Duration { return percentile(s.queries, 50) }
func (s *historySubject) rssMax() float64         { return slices.Max(s.rss) }
func (s *historySubject) laterMax() float64       { return slices.Max(s.later) }
func (s *historySubject) anonMax() float64        { return slices.Max(s.anon) }

// waitNoneWaiting types /peers into p until its table says no message to
// friend is waiting (each has been acknowledged).
func waitNoneWaiting(tb testing.TB, p *proc, friend string) {
	tb.Helper()
	deadline := time.Now().Add(stopTimeout)
	for {
		before := len(p.stderr.snapshot())
		p.writeLine(tb, "/peers")
		var waiting string
		p.stderr.wait(tb, "the /peers table", func(lines []string) bool {
			var ok bool
			waiting, ok = peersWaiting(lines[before:], friend)
			return ok
		})
		if waiting == "0" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("%s's /peers still says %s messages to %s are waiting after %v", p.label, waiting, friend, stopTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// peersWaiting finds, in lines that /peers printed, the WAITING column of
// friend's row; ok is false until the table is complete (the IDENTITY
// table after it has begun).
func peersWaiting(lines []string, friend string) (waiting string, ok bool) {
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "FRIEND") && strings.Contains(l, "WAITING") })
	if i < 0 {
		return "", false
	}
	end := slices.IndexFunc(lines[i+1:], func(l string) bool { return strings.HasPrefix(l, "FRIEND") && strings.Contains(l, "IDENTITY") })
	if end < 0 {
		return "", false
	}
	for _, l := range lines[i+1 : i+1+end] {
		if f := strings.Fields(l); len(f) > 1 && f[0] == friend {
			if _, err := strconv.Atoi(f[len(f)-1]); err == nil {
				return f[len(f)-1], true
			}
		}
	}
	return "", false
}

// stopProc stops p with SIGTERM, waits for it to exit with status 0 and
// returns how long that took.
func stopProc(tb testing.TB, p *proc) time.Duration {
	tb.Helper()
	t0 := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		tb.Fatalf("signalling %s: %v", p.label, err)
	}
	select {
	case <-p.exited:
	case <-time.After(stopTimeout):
		tb.Fatalf("%s still running %v after SIGTERM", p.label, stopTimeout)
	}
	took := time.Since(t0)
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		tb.Fatalf("%s exited with status %d after SIGTERM; its stderr:\n%s", p.label, code, quoteLines(p.stderr.snapshot()))
	}
	return took
}

// dirMB is the disk space that the regular files under dir take, in MiB
// (as du counts it: allocated blocks, not the sizes).
func dirMB(tb testing.TB, dir string) float64 {
	tb.Helper()
	var size int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			size += st.Blocks * 512
		} else {
			size += info.Size()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return float64(size) / (1 << 20)
}
