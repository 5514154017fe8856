package main

// The benchmarks' measures and reports (bench_test.go,
// history_bench_test.go): latencies and throughput, the CPU and memory a
// process uses, the sizes from the environment, and the tables of figures.

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/tabwriter"
	"time"
)

// cpuUse is the CPU a process used: clock ticks from /proc/PID/stat, and
// the exact run time and the number of times scheduled, summed over its
// threads, from /proc/PID/task/*/schedstat.
type cpuUse struct {
	ticks   int
	ns      int64
	wakeups int64
}

func (u cpuUse) minus(v cpuUse) cpuUse {
	return cpuUse{ticks: u.ticks - v.ticks, ns: u.ns - v.ns, wakeups: u.wakeups - v.wakeups}
}

func (u cpuUse) String() string {
	return fmt.Sprintf("%d ticks, %dµs, %d wakeups", u.ticks, u.ns/1000, u.wakeups)
}

func busiest(us []cpuUse) cpuUse {
	return slices.MaxFunc(us, func(a, b cpuUse) int { return cmp.Or(cmp.Compare(a.ticks, b.ticks), cmp.Compare(a.ns, b.ns)) })
}

// meanUse is the mean of us: ticks, CPU time in µs, wakeups.
func meanUse(us []cpuUse) (m struct{ ticks, cpu, wakeups float64 }) {
	for _, u := range us {
		m.ticks += float64(u.ticks) / float64(len(us))
		m.cpu += float64(u.ns) / 1000 / float64(len(us))
		m.wakeups += float64(u.wakeups) / float64(len(us))
	}
	return m
}

// Measuring.

// latencies takes n samples, one at a time: prepare(i) (untimed, if not
// nil), then send(i) and the wait for out's next line. Each sample is the
// time from just before send until the line was read.
func latencies(tb testing.TB, n int, out *output, prepare, send func(i int)) []time.Duration {
	tb.Helper()
	first := out.count()
	d := make([]time.Duration, n)
	for i := range n {
		if prepare != nil {
			prepare(i)
		}
		t0 := time.Now()
		send(i)
		d[i] = out.waitLines(tb, first+i+1).Sub(t0)
	}
	return d
}

// inTurns takes a warm-up sample from each of fs, then n samples of each
// in turns, starting each round with the next one, so that a drift in the
// machine's speed during the run touches all alike.
func inTurns(n int, fs ...func() time.Duration) [][]time.Duration {
	out := make([][]time.Duration, len(fs))
	for _, f := range fs {
		f()
	}
	for i := range n {
		for j := range fs {
			k := (i + j) % len(fs)
			out[k] = append(out[k], fs[k]())
		}
	}
	return out
}

// throughputInput is n lines "user_2/TEXT" with TEXT messageChars long and
// numbered; it returns them and the last TEXT.
func throughputInput(n int) ([]byte, string) {
	var buf bytes.Buffer
	var text string
	for i := range n {
		num := fmt.Sprintf("%09d ", i)
		text = num + strings.Repeat("x", messageChars-len(num))
		buf.WriteString("user_2/" + text + "\n")
	}
	return buf.Bytes(), text
}

// pipeThrough writes input, holding n lines, to p's stdin as fast as the
// pipe takes it, and returns the time until out has n more lines.
func pipeThrough(tb testing.TB, p *proc, out *output, input []byte, n int) time.Duration {
	tb.Helper()
	first := out.count()
	errc := make(chan error, 1)
	t0 := time.Now()
	go func() {
		_, err := p.stdin.Write(input)
		errc <- err
	}()
	at := out.waitLines(tb, first+n)
	if err := <-errc; err != nil {
		tb.Fatalf("writing to %s: %v", p.label, err)
	}
	return at.Sub(t0)
}

// fdatasyncCost is the median time of n appends of 64 bytes to a file in
// dir, each followed by fdatasync, back to back.
func fdatasyncCost(tb testing.TB, dir string, n int) time.Duration {
	tb.Helper()
	f := openSyncFile(tb, dir)
	d := make([]time.Duration, n)
	for i := range d {
		d[i] = syncOnce(tb, f)
	}
	return percentile(d, 50)
}

// openSyncFile opens a file in dir for syncOnce, closed when the test ends.
func openSyncFile(tb testing.TB, dir string) *os.File {
	tb.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "fdatasync"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// syncOnce times one append of 64 bytes to f and its fdatasync.
func syncOnce(tb testing.TB, f *os.File) time.Duration {
	tb.Helper()
	rec := append(bytes.Repeat([]byte{'x'}, 63), '\n')
	t0 := time.Now()
	if _, err := f.Write(rec); err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		tb.Fatal(err)
	}
	return time.Since(t0)
}

// cpuUsed reads what p has used so far.
func cpuUsed(tb testing.TB, p *proc) cpuUse {
	tb.Helper()
	pid := p.cmd.Process.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The command name, in parentheses, may hold spaces: count from after it.
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	// fields[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(fields) < 13 {
		tb.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	utime, err1 := strconv.Atoi(fields[11])
	stime, err2 := strconv.Atoi(fields[12])
	if err1 != nil || err2 != nil {
		tb.Fatalf("/proc/%d/stat: %q", pid, s)
	}
	u := cpuUse{ticks: utime + stime}
	// schedstat: run time in ns, time waiting to run, times scheduled.
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			continue // the thread has just exited
		}
		if err != nil {
			tb.Fatal(err)
		}
		var run, wait, scheduled int64
		if _, err := fmt.Sscan(string(b), &run, &wait, &scheduled); err != nil {
			tb.Fatalf("%s: %q: %v", path, b, err)
		}
		u.ns += run
		u.wakeups += scheduled
	}
	return u
}

// rssMB is VmRSS of p from /proc/PID/status, in MiB.
func rssMB(tb testing.TB, p *proc) float64 {
	tb.Helper()
	return statusMB(tb, p, "VmRSS")
}

// statusMB is the field key (VmRSS, RssAnon, RssFile...) of p's
// /proc/PID/status, in MiB.
func statusMB(tb testing.TB, p *proc, key string) float64 {
	tb.Helper()
	path := fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid)
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, key+":"); ok {
			kb, err := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")))
			if err != nil {
				tb.Fatalf("%s: %q", path, l)
			}
			return float64(kb) / 1024
		}
	}
	tb.Fatalf("%s has no %s", path, key)
	return 0
}

// percentile is the p-th percentile of d, nearest rank.
func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func envInt(tb testing.TB, name string, def int) int {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		tb.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

func envDuration(tb testing.TB, name string, def time.Duration) time.Duration {
	tb.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		tb.Fatalf("%s=%q: want a positive duration such as 3s", name, v)
	}
	return d
}

// Reporting.

// figure is one row of a benchmark's table.
type figure struct {
	measure, p2pchat, baseline, ratio, target, met string
}

// logTable logs a benchmark's figures as an aligned table, the title and
// the machine on its first line. The testing package cuts a benchmark's
// output at 10 lines: 7 rows at most.
func logTable(b *testing.B, title string, rows ...figure) {
	b.Helper()
	var sb strings.Builder
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\tp2pchat\tbaseline\tratio\ttarget\tmet")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.measure, dash(r.p2pchat), dash(r.baseline), dash(r.ratio), dash(r.target), dash(r.met))
	}
	tw.Flush()
	b.Logf("%s [%s]\n%s", title, machine(), strings.TrimSuffix(sb.String(), "\n"))
}

// machine names the CPU (the first "model name" in /proc/cpuinfo), the
// number of CPUs this process may use, and the Go release.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	return fmt.Sprintf("%s, %d CPUs, %s", model, runtime.NumCPU(), runtime.Version())
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ratio(a, b time.Duration) float64 { return float64(a) / float64(b) }

func fmtRatio(r float64) string { return fmt.Sprintf("%.3g", r) }

// fmtDur shows d in µs below 10ms, else in ms.
func fmtDur(d time.Duration) string {
	if d < 10*time.Millisecond {
		return fmt.Sprintf("%.0fµs", micros(d))
	}
	return fmt.Sprintf("%.1fms", millis(d))
}

func boolMetric(ok bool) float64 {
	if ok {
		return 1
	}
	return 0
}

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "NO"
}
