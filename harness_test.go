package main

// The harness of the tests and benchmarks of this package: TestMain builds
// the binary once, then tests run real instances on loopback, with stdin a
// pipe so that the program reads plain lines, prints messages on stdout and
// notices on stderr. Here are the streams that collect what an instance
// writes, the processes, the chats (friends on free ports, in a peers file)
// and the waits. The ports come from freePort (port_test.go); the network
// namespaces from netns_harness_test.go; the benchmarks' own processes from
// bench_harness_test.go.

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"p2pchat/network/networktest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the p2pchat built by TestMain.
var binary string

// waitTimeout bounds every wait for something an instance should do.
const waitTimeout = 10 * time.Second

func TestMain(m *testing.M) { os.Exit(networktest.RunWithBinary(m, &binary)) }

// stream collects the lines a child writes on one of its outputs.
type stream struct {
	name    string
	mu      sync.Mutex
	lines   []string
	eof     bool
	changed chan struct{} // closed and replaced whenever lines or eof change
}

func newStream(name string) *stream { return &stream{name: name, changed: make(chan struct{})} }

// collect reads r until its end. A line is kept byte for byte without its
// '\n' (a '\r' stays), so that tests can compare exactly.
func (s *stream) collect(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			s.update(func() { s.lines = append(s.lines, strings.TrimSuffix(line, "\n")) })
		}
		if err != nil {
			s.update(func() { s.eof = true })
			return
		}
	}
}

func (s *stream) update(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
	close(s.changed)
	s.changed = make(chan struct{})
}

// snapshot returns the lines so far.
func (s *stream) snapshot() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lines)
}

// wait waits until cond holds for the lines so far and returns them; it
// fails the test after waitTimeout or if the stream ends first.
func (s *stream) wait(t testing.TB, what string, cond func(lines []string) bool) []string {
	t.Helper()
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		lines, eof, changed := slices.Clone(s.lines), s.eof, s.changed
		s.mu.Unlock()
		if cond(lines) {
			return lines
		}
		if eof {
			t.Fatalf("%s ended before %s; it has:\n%s", s.name, what, quoteLines(lines))
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s on %s; it has:\n%s", waitTimeout, what, s.name, quoteLines(lines))
		}
	}
}

// waitLine waits for a line that contains sub and returns it.
func (s *stream) waitLine(t testing.TB, sub string) string {
	t.Helper()
	lines := s.wait(t, fmt.Sprintf("a line containing %q", sub), func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, sub) })
	})
	i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, sub) })
	return lines[i]
}

// waitCount waits until at least n lines satisfy match and returns all lines.
func (s *stream) waitCount(t testing.TB, what string, n int, match func(string) bool) []string {
	t.Helper()
	return s.wait(t, fmt.Sprintf("%d %s", n, what), func(lines []string) bool {
		return countFunc(lines, match) >= n
	})
}

func countFunc(lines []string, match func(string) bool) int {
	n := 0
	for _, l := range lines {
		if match(l) {
			n++
		}
	}
	return n
}

func quoteLines(lines []string) string {
	if len(lines) == 0 {
		return "\t(nothing)"
	}
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "\t%q\n", l)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// process is one running p2pchat.
type process struct {
	label   string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	stdout  *stream
	stderr  *stream
	exited  chan struct{} // closed once the process has exited and its output is read
	dataDir string        // as given with --data-dir, if any
}

// start runs the binary with args and env added to the environment. It
// kills the process when the test ends if it is still running.
func start(t *testing.T, label string, args []string, env ...string) *process {
	t.Helper()
	cmd := exec.Command(binary, args...)
	// A state home of the test's own, in case a run ignores --data-dir.
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	cmd.Env = append(cmd.Env, env...)
	return startCmd(t, label, cmd)
}

// startCmd starts cmd with its standard streams collected. When the test
// ends, cmd is killed if it still runs (its whole process group, if it has
// one of its own), and on failure what it wrote is logged.
func startCmd(t testing.TB, label string, cmd *exec.Cmd) *process {
	t.Helper()
	p := &process{
		label:  label,
		cmd:    cmd,
		stdout: newStream(label + "'s stdout"),
		stderr: newStream(label + "'s stderr"),
	}
	p.stdin, p.exited = launch(t, label, cmd, p.stdout, p.stderr)
	t.Cleanup(func() {
		kill(cmd, p.exited)
		if t.Failed() {
			t.Logf("%s stdout:\n%s", label, quoteLines(p.stdout.snapshot()))
			t.Logf("%s stderr:\n%s", label, quoteLines(p.stderr.snapshot()))
			if p.dataDir != "" {
				if b, err := os.ReadFile(filepath.Join(p.dataDir, "p2pchat.log")); err == nil {
					t.Logf("%s log:\n%s", label, b)
				}
			}
		}
	})
	return p
}

// launch starts cmd with stdin a pipe and its output read by stdout and
// stderr. exited is closed once cmd has exited and its output is read; the
// caller kills it (see kill) in a cleanup.
func launch(t testing.TB, label string, cmd *exec.Cmd, stdout, stderr interface{ collect(io.Reader) }) (stdin io.WriteCloser, exited chan struct{}) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	errPipe, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", label, err)
	}
	exited = make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); stdout.collect(outPipe) }()
	go func() { defer wg.Done(); stderr.collect(errPipe) }()
	go func() {
		wg.Wait() // all reads done before Wait closes the pipes
		cmd.Wait()
		close(exited)
	}()
	return stdin, exited
}

// kill ends cmd, if it still runs (its whole process group, if it has one
// of its own), and waits until exited is closed.
func kill(cmd *exec.Cmd, exited chan struct{}) {
	select {
	case <-exited:
	default:
		if a := cmd.SysProcAttr; a != nil && a.Setpgid {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		} else {
			cmd.Process.Kill()
		}
		<-exited
	}
}

// chat describes a group of friends on free loopback ports, in a peers file.
type chat struct {
	names     []string
	ports     map[string]int
	dirs      map[string]string // each name's data directory
	peersFile string
}

// newChat allocates a free port and a data directory per name, creates each
// identity with --id, and writes the peers file with every ID pinned, as
// the README tells friends to do.
func newChat(t testing.TB, names ...string) *chat {
	t.Helper()
	return makeChat(t, true, names...)
}

// newUnpinnedChat is newChat with a peers file of three columns, NAME HOST
// PORT: the table pins no ID, so each friend's is pinned on first use. The
// identities are created when the instances first start.
func newUnpinnedChat(t testing.TB, names ...string) *chat {
	t.Helper()
	return makeChat(t, false, names...)
}

func makeChat(t testing.TB, pin bool, names ...string) *chat {
	t.Helper()
	c := &chat{names: names, ports: make(map[string]int), dirs: make(map[string]string)}
	var b strings.Builder
	fmt.Fprintln(&b, "# written by harness_test.go")
	for i, port := range freePorts(t, len(names)) {
		name := names[i]
		c.ports[name] = port
		c.dirs[name] = t.TempDir()
		fmt.Fprintf(&b, "%s\t127.0.0.1 %d", name, port)
		if pin {
			fmt.Fprintf(&b, "  %s", idOf(t, c.dirs[name], name))
		}
		fmt.Fprintln(&b)
	}
	c.peersFile = writeFile(t, "peers", b.String())
	return c
}

// idOf returns the identity that p2pchat --id prints for name in dir,
// creating it if needed. --id wants name in the table, and the tables the
// tests write pin the IDs that idOf finds: it passes a table of name alone.
func idOf(t testing.TB, dir, name string) string {
	t.Helper()
	peers := writeFile(t, "peers-"+name, fmt.Sprintf("%s 127.0.0.1 1\n", name))
	out, err := exec.Command(binary, "--peers", peers, "--data-dir", dir, "--id", name).Output()
	if err != nil {
		t.Fatalf("p2pchat --peers %s --data-dir %s --id %s: %v", peers, dir, name, err)
	}
	return strings.TrimSpace(string(out))
}

// greetingLine is the greeting, on one line as piped stderr has it, of
// name listening on addr, with friends (first in the table first) and no
// groups.
func greetingLine(name, addr string, friends ...string) string {
	return fmt.Sprintf("p2pchat 0.2.0: %s, listening on %s. Your friends: %s. Write %s/hello to send %s a message; /help for help.",
		name, addr, strings.Join(friends, ", "), friends[0], friends[0])
}

func (c *chat) addr(name string) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.ports[name]))
}

// freePorts returns n distinct ports from freePort.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	for i := range ports {
		ports[i] = freePort(t)
	}
	return ports
}

func writeFile(t testing.TB, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// startAs runs name from c with its own data directory, flags first, and
// waits for the greeting.
func (c *chat) startAs(t *testing.T, name string, flags ...string) *process {
	t.Helper()
	dir := c.dirs[name]
	args := append([]string{"--peers", c.peersFile, "--data-dir", dir}, flags...)
	p := start(t, name, append(args, name))
	p.dataDir = dir
	p.waitGreeting(t, c.addr(name))
	return p
}

// waitGreeting waits for the notice saying where the instance listens.
func (p *process) waitGreeting(t *testing.T, addr string) {
	t.Helper()
	p.stderr.waitLine(t, "listening on "+addr)
}

// send writes one line to the instance's stdin.
func (p *process) send(t *testing.T, line string) {
	t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		t.Fatalf("writing to %s: %v", p.label, err)
	}
}

// signal sends sig and returns the exit status.
func (p *process) signal(t *testing.T, sig os.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signalling %s: %v", p.label, err)
	}
	return p.wait(t)
}

// wait waits for the process to exit and returns its exit status, -1 if a
// signal killed it.
func (p *process) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(waitTimeout):
		t.Fatalf("%s still running after %v", p.label, waitTimeout)
	}
	return p.cmd.ProcessState.ExitCode()
}

// result waits for the process to exit, checks its status, and returns its
// stdout as one string (each line ending in a newline) and its lines.
func (p *process) result(t *testing.T, code int) (out string, stdout, stderr []string) {
	t.Helper()
	if got := p.wait(t); got != code {
		t.Errorf("exit status %d, want %d", got, code)
	}
	stdout, stderr = p.stdout.snapshot(), p.stderr.snapshot()
	out = strings.Join(stdout, "\n")
	if len(stdout) > 0 {
		out += "\n"
	}
	return out, stdout, stderr
}

func isMessage(l string) bool { return strings.HasPrefix(l, "Message from ") }

func messageFrom(from, text string) string { return "Message from " + from + ": " + text }

// waitPoll waits until cond holds, checking every few milliseconds; for
// conditions that no stream reports, such as the contents of a file.
func waitPoll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
