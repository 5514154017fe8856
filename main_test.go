package main

// End-to-end tests: they build the binary once and run real instances on
// loopback, with stdin a pipe so that the program reads plain lines, prints
// messages on stdout and notices on stderr.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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

func TestMain(m *testing.M) {
	os.Exit(buildAndRun(m))
}

func buildAndRun(m *testing.M) int {
	dir, err := os.MkdirTemp("", "p2pchat-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "p2pchat")
	goTool, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "cannot find the go command:", err)
		return 1
	}
	build := exec.Command(goTool, "build", "-o", binary, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building p2pchat:", err)
		return 1
	}
	return m.Run()
}

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
	fmt.Fprintln(&b, "# written by main_test.go")
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
// creating it if needed.
func idOf(t testing.TB, dir, name string) string {
	t.Helper()
	out, err := exec.Command(binary, "--data-dir", dir, "--id", name).Output()
	if err != nil {
		t.Fatalf("p2pchat --data-dir %s --id %s: %v", dir, name, err)
	}
	return strings.TrimSpace(string(out))
}

func (c *chat) addr(name string) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.ports[name]))
}

// freePorts returns n distinct ports that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close() // held until all are taken, so they differ
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
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

// TestThreeFriends has every ordered pair of three instances exchange one
// message: each prints exactly the two addressed to it.
func TestThreeFriends(t *testing.T) {
	names := []string{"user_1", "user_2", "user_3"}
	c := newChat(t, names...)
	procs := make(map[string]*process)
	for _, n := range names {
		procs[n] = c.startAs(t, n)
	}

	// text[from][to]; one carries tabs, more slashes and UTF-8.
	text := func(from, to string) string {
		if from == "user_1" && to == "user_3" {
			return "a\tb/c/é日本"
		}
		return fmt.Sprintf("hello %s, this is %s", to, from)
	}
	for _, from := range names {
		for _, to := range names {
			if from != to {
				procs[from].send(t, to+"/"+text(from, to))
			}
		}
	}

	want := make(map[string][]string)
	for _, to := range names {
		for _, from := range names {
			if from != to {
				want[to] = append(want[to], messageFrom(from, text(from, to)))
			}
		}
		procs[to].stdout.waitCount(t, "messages", len(want[to]), isMessage)
	}
	// Everything has arrived: stop them all, so that their output is complete.
	for _, n := range names {
		if code := procs[n].signal(t, syscall.SIGTERM); code != 0 {
			t.Errorf("%s exited with status %d after SIGTERM, want 0", n, code)
		}
	}
	for _, to := range names {
		want := want[to]
		got := procs[to].stdout.snapshot()
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s's stdout:\n%s\nwant exactly:\n%s", to, quoteLines(got), quoteLines(want))
		}
		// Every message was delivered: no notice but the greeting.
		if errs := procs[to].stderr.snapshot(); len(errs) != 1 {
			t.Errorf("%s's stderr has more than the greeting:\n%s", to, quoteLines(errs))
		}
	}
}

// TestEndOfInput: once stdin ends the instance goes on receiving, and a
// signal then stops it with status 0.
func TestEndOfInput(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			c := newChat(t, "user_1", "user_2")
			u1 := c.startAs(t, "user_1")
			u2 := c.startAs(t, "user_2")

			// A last line without a newline is still sent.
			if _, err := io.WriteString(u2.stdin, "user_1/last words"); err != nil {
				t.Fatal(err)
			}
			if err := u2.stdin.Close(); err != nil {
				t.Fatal(err)
			}
			u1.stdout.waitLine(t, messageFrom("user_2", "last words"))

			u1.send(t, "user_2/still there?")
			u2.stdout.waitLine(t, messageFrom("user_1", "still there?"))
			select {
			case <-u2.exited:
				t.Fatalf("user_2 exited after the end of its input")
			default:
			}

			if code := u2.signal(t, sig); code != 0 {
				t.Errorf("exit status after %v = %d, want 0", sig, code)
			}
			if got := u2.stdout.snapshot(); !slices.Equal(got, []string{messageFrom("user_1", "still there?")}) {
				t.Errorf("user_2's stdout:\n%s", quoteLines(got))
			}
			if errs := u2.stderr.snapshot(); len(errs) != 1 {
				t.Errorf("user_2's stderr has more than the greeting:\n%s", quoteLines(errs))
			}
		})
	}
}

// TestExitStatus runs command lines that end at once, checking the status
// and what is printed.
func TestExitStatus(t *testing.T) {
	c := newChat(t, "user_1", "user_2")
	dup := writeFile(t, "dup", "user_1 127.0.0.1 50100\n\n# comment\nuser_1 127.0.0.1 50101\n")
	badPort := writeFile(t, "badport", "user_1 127.0.0.1 50100\nuser_2 127.0.0.1 70000\n")
	missing := writeFile(t, "missing", "user_1 127.0.0.1 50100\nuser_2 127.0.0.1\n")
	notDir := writeFile(t, "not-a-dir", "")
	dataDir := t.TempDir()

	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     *regexp.Regexp // nil: must be empty
		stderr     string         // must contain; "" with empty stdout: anything
		stderrOnly bool           // stderr is exactly one line
	}{
		{
			name:   "duplicate name",
			args:   []string{"--peers", dup, "--data-dir", dataDir, "user_1"},
			code:   2,
			stderr: dup + ":4: duplicate name",
		},
		{
			name:   "bad port",
			args:   []string{"--peers", badPort, "--data-dir", dataDir, "user_1"},
			code:   2,
			stderr: badPort + `:2: bad port "70000"`,
		},
		{
			name:   "missing column",
			args:   []string{"--peers", missing, "--data-dir", dataDir, "user_1"},
			code:   2,
			stderr: missing + ":2: missing column",
		},
		{
			name:   "no such peers file",
			args:   []string{"--peers", filepath.Join(dataDir, "nonexistent"), "--data-dir", dataDir, "user_1"},
			code:   2,
			stderr: "no such file",
		},
		{
			name:   "name not in table",
			args:   []string{"--peers", c.peersFile, "--data-dir", dataDir, "user_9"},
			code:   2,
			stderr: `"user_9" is not in the table of friends`,
		},
		{
			name:   "no name",
			args:   []string{"--peers", c.peersFile, "--data-dir", dataDir},
			code:   2,
			stderr: "want exactly one NAME",
		},
		{
			name:   "two names",
			args:   []string{"--peers", c.peersFile, "--data-dir", dataDir, "user_1", "user_2"},
			code:   2,
			stderr: "want exactly one NAME",
		},
		{
			name:   "unknown flag",
			args:   []string{"--peers", c.peersFile, "--bogus", "user_1"},
			code:   2,
			stderr: "flag provided but not defined: -bogus",
		},
		{
			name:   "unknown flag after name",
			args:   []string{"user_1", "--bogus"},
			code:   2,
			stderr: "flag provided but not defined: -bogus",
		},
		{
			name:   "idle timeout not positive",
			args:   []string{"--peers", c.peersFile, "--data-dir", dataDir, "--idle-timeout", "0s", "user_1"},
			code:   2,
			stderr: "--idle-timeout and --ack-timeout must be positive",
		},
		{
			name:       "data dir is a file",
			args:       []string{"--peers", c.peersFile, "--data-dir", notDir, "user_1"},
			code:       1,
			stderr:     "cannot create the data directory",
			stderrOnly: true,
		},
		{
			name:   "version, one dash",
			args:   []string{"-version"},
			code:   0,
			stdout: regexp.MustCompile(`^p2pchat \d+\.\d+\.\d+\n$`),
		},
		{
			name:   "version, two dashes",
			args:   []string{"--version"},
			code:   0,
			stdout: regexp.MustCompile(`^p2pchat \d+\.\d+\.\d+\n$`),
		},
		{
			name:   "version after name",
			args:   []string{"user_1", "--version"},
			code:   0,
			stdout: regexp.MustCompile(`^p2pchat \d+\.\d+\.\d+\n$`),
		},
		{
			name:   "flags after name",
			args:   []string{"user_1", "--peers", dup, "--data-dir", dataDir},
			code:   2,
			stderr: dup + ":4: duplicate name",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := start(t, "p2pchat", tt.args)
			code := p.wait(t)
			stdout, stderr := p.stdout.snapshot(), p.stderr.snapshot()
			if code != tt.code {
				t.Errorf("exit status %d, want %d", code, tt.code)
			}
			out := strings.Join(stdout, "\n")
			if len(stdout) > 0 {
				out += "\n"
			}
			switch {
			case tt.stdout == nil && out != "":
				t.Errorf("stdout not empty:\n%s", quoteLines(stdout))
			case tt.stdout != nil && !tt.stdout.MatchString(out):
				t.Errorf("stdout %q does not match %v", out, tt.stdout)
			}
			if tt.stderr != "" && !slices.ContainsFunc(stderr, func(l string) bool { return strings.Contains(l, tt.stderr) }) {
				t.Errorf("stderr has no line containing %q:\n%s", tt.stderr, quoteLines(stderr))
			}
			if tt.stderrOnly && len(stderr) != 1 {
				t.Errorf("stderr has %d lines, want 1:\n%s", len(stderr), quoteLines(stderr))
			}
		})
	}
}

// TestPortInUse: when the instance's port is taken it says so in one line
// and exits with status 1.
func TestPortInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	peers := writeFile(t, "peers", fmt.Sprintf("user_1 127.0.0.1 %d\n", port))

	p := start(t, "user_1", []string{"--peers", peers, "--data-dir", t.TempDir(), "user_1"})
	if code := p.wait(t); code != 1 {
		t.Errorf("exit status %d, want 1", code)
	}
	stderr := p.stderr.snapshot()
	if len(stderr) != 1 || !strings.Contains(stderr[0], "address already in use") {
		t.Errorf("stderr, want one line saying the address is in use:\n%s", quoteLines(stderr))
	}
	if stdout := p.stdout.snapshot(); len(stdout) > 0 {
		t.Errorf("stdout not empty:\n%s", quoteLines(stdout))
	}
}

// TestFlagsAfterName runs an instance whose flags follow NAME: it listens
// where the given table says and keeps its files in the given directory.
func TestFlagsAfterName(t *testing.T) {
	c := newChat(t, "user_1", "user_2")
	dir := c.dirs["user_1"] // holds the identity the table pins
	u1 := start(t, "user_1", []string{"user_1", "--peers", c.peersFile, "--data-dir", dir, "--idle-timeout", "1m"})
	u1.waitGreeting(t, c.addr("user_1"))
	u2 := c.startAs(t, "user_2")
	u1.send(t, "user_2/flags after the name")
	u2.stdout.waitLine(t, messageFrom("user_1", "flags after the name"))
	if _, err := os.Stat(filepath.Join(dir, "p2pchat.log")); err != nil {
		t.Errorf("no log in the --data-dir given after NAME: %v", err)
	}
}

// TestRefusedInput: lines that are not messages to a friend each give one
// notice on stderr and send nothing.
func TestRefusedInput(t *testing.T) {
	c := newChat(t, "user_1", "user_2")
	u1 := c.startAs(t, "user_1")
	u2 := c.startAs(t, "user_2")

	refused := []struct{ line, notice string }{
		{"no slash here", `no "/" in that line`},
		{"nobody/hi", `unknown friend "nobody"`},
		{"user_2/", "empty message"},
		{"user_2/" + strings.Repeat("é", 251), "message too long: 251 characters"},
		{"user_1/to myself", "cannot send a message to yourself"},
	}
	for _, r := range refused {
		u1.send(t, r.line)
	}
	u1.send(t, "user_2/marker")

	// The lines are handled in order, so the marker comes after the refusals.
	u2.stdout.waitLine(t, messageFrom("user_1", "marker"))
	u1.stderr.wait(t, "a notice per refused line", func(lines []string) bool { return len(lines) >= 1+len(refused) })
	for _, p := range []*process{u1, u2} {
		if code := p.signal(t, syscall.SIGTERM); code != 0 {
			t.Errorf("%s exited with status %d, want 0", p.label, code)
		}
	}

	if got := u2.stdout.snapshot(); !slices.Equal(got, []string{messageFrom("user_1", "marker")}) {
		t.Errorf("user_2's stdout, want only the marker:\n%s", quoteLines(got))
	}
	stderr := u1.stderr.snapshot()
	if len(stderr) != 1+len(refused) {
		t.Fatalf("user_1's stderr, want the greeting and %d notices:\n%s", len(refused), quoteLines(stderr))
	}
	for i, r := range refused {
		if got := stderr[1+i]; !strings.Contains(got, r.notice) {
			t.Errorf("notice for %.20q = %q, want it to contain %q", r.line, got, r.notice)
		}
	}
	if got := u1.stdout.snapshot(); len(got) > 0 {
		t.Errorf("user_1's stdout not empty:\n%s", quoteLines(got))
	}
}

// checkOwnerOnly checks that dir is 0700 and everything in it 0600 (or
// 0700 for directories), and returns the names of the regular files.
func checkOwnerOnly(t *testing.T, dir string) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		} else {
			files = append(files, d.Name())
		}
		if perm := info.Mode().Perm(); perm != want {
			t.Errorf("%s has mode %v, want %v", path, perm, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestDataDirOwnerOnly: the data directory and the files in it are the
// owner's only, even when they existed before with looser modes.
func TestDataDirOwnerOnly(t *testing.T) {
	c := newChat(t, "user_1", "user_2")

	t.Run("given", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "loose")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
			t.Fatal(err)
		}
		logPath := filepath.Join(dir, "p2pchat.log")
		if err := os.WriteFile(logPath, []byte("old line\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(logPath, 0o644); err != nil {
			t.Fatal(err)
		}
		p := start(t, "user_1", []string{"--peers", c.peersFile, "--data-dir", dir, "user_1"})
		p.waitGreeting(t, c.addr("user_1"))
		if code := p.signal(t, syscall.SIGTERM); code != 0 {
			t.Errorf("exit status %d, want 0", code)
		}
		if files := checkOwnerOnly(t, dir); !slices.Contains(files, "p2pchat.log") {
			t.Errorf("no p2pchat.log in %s: %v", dir, files)
		}
	})

	t.Run("new and nested", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "a", "b")
		p := start(t, "user_1", []string{"--peers", c.peersFile, "--data-dir", dir, "user_1"})
		p.waitGreeting(t, c.addr("user_1"))
		if code := p.signal(t, syscall.SIGTERM); code != 0 {
			t.Errorf("exit status %d, want 0", code)
		}
		if files := checkOwnerOnly(t, dir); !slices.Contains(files, "p2pchat.log") {
			t.Errorf("no p2pchat.log in %s: %v", dir, files)
		}
	})

	t.Run("default under XDG_STATE_HOME", func(t *testing.T) {
		state := t.TempDir()
		p := start(t, "user_2", []string{"--peers", c.peersFile, "user_2"}, "XDG_STATE_HOME="+state)
		p.waitGreeting(t, c.addr("user_2"))
		if code := p.signal(t, syscall.SIGTERM); code != 0 {
			t.Errorf("exit status %d, want 0", code)
		}
		dir := filepath.Join(state, "p2pchat", "user_2")
		if files := checkOwnerOnly(t, dir); !slices.Contains(files, "p2pchat.log") {
			t.Errorf("no p2pchat.log in %s: %v", dir, files)
		}
	})
}

// TestIdleCloseAndRedial: a client connection idle past --idle-timeout is
// closed and logged, and the next message dials again and arrives.
func TestIdleCloseAndRedial(t *testing.T) {
	c := newChat(t, "user_1", "user_2")
	u1 := c.startAs(t, "user_1", "--idle-timeout", "200ms")
	u2 := c.startAs(t, "user_2")
	logPath := filepath.Join(u1.dataDir, "p2pchat.log")
	logLines := func(match func(string) bool) int {
		b, err := os.ReadFile(logPath)
		if err != nil {
			t.Fatal(err)
		}
		return countFunc(strings.Split(string(b), "\n"), match)
	}
	toUser2 := func(l string) bool { return strings.Contains(l, " friend=user_2 ") }
	closedIdle := func(l string) bool {
		return toUser2(l) && strings.Contains(l, `msg="client connection closed"`) && strings.Contains(l, "reason=idle")
	}
	up := func(l string) bool { return toUser2(l) && strings.Contains(l, `msg="client connection up"`) }

	u1.send(t, "user_2/first")
	u2.stdout.waitLine(t, messageFrom("user_1", "first"))
	waitPoll(t, "the log to say the connection closed for idleness", func() bool { return logLines(closedIdle) >= 1 })

	u1.send(t, "user_2/second")
	u2.stdout.waitLine(t, messageFrom("user_1", "second"))
	if n := logLines(up); n != 2 {
		t.Errorf("log has %d lines saying the connection to user_2 came up, want 2 (dialled again)", n)
	}
	if errs := u1.stderr.snapshot(); len(errs) != 1 {
		t.Errorf("user_1's stderr has more than the greeting:\n%s", quoteLines(errs))
	}
}

// TestIdentity: --id prints one stable ID, the key stays private, and an
// instance holding another identity under a pinned name is refused loudly
// in both directions while the real friend still gets through.
func TestIdentity(t *testing.T) {
	c := newChat(t, "user_1", "user_2")
	dir := c.dirs["user_1"]
	first, err := exec.Command(binary, "--id", "--data-dir", dir, "user_1").Output()
	if err != nil {
		t.Fatal(err)
	}
	again, err := exec.Command(binary, "-data-dir", dir, "user_1", "-id").Output()
	if err != nil {
		t.Fatal(err)
	}
	id := strings.TrimSuffix(string(first), "\n")
	if string(first) != string(again) || strings.ContainsAny(id, " \t\n") || len(id) != 55 {
		t.Errorf("--id printed %q, then %q; want the same one-line ID", first, again)
	}
	if st, err := os.Stat(filepath.Join(dir, "identity.key")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("identity.key: %v, want mode 0600", err)
	}

	u1 := c.startAs(t, "user_1")
	impostor := start(t, "impostor", []string{"--peers", c.peersFile, "--data-dir", t.TempDir(), "user_2"})
	impostor.waitGreeting(t, c.addr("user_2"))

	u1.send(t, "user_2/for user_2 only")
	warning := u1.stderr.waitLine(t, "WARNING: user_2's address "+c.addr("user_2"))
	for _, want := range []string{"but user_2 is pinned by the table to", "message queued, 1 waiting", "put it in the table"} {
		if !strings.Contains(warning, want) {
			t.Errorf("warning %q does not say %q", warning, want)
		}
	}
	impostor.send(t, "user_1/it is me, user_2")
	inbound := u1.stderr.waitLine(t, "WARNING: a connection from")
	if !strings.Contains(inbound, "as user_2, but user_2 is pinned by the table") {
		t.Errorf("inbound warning: %q", inbound)
	}
	impostor.stderr.waitLine(t, "it refused our certificate")
	if code := impostor.signal(t, syscall.SIGTERM); code != 0 {
		t.Errorf("impostor exit status %d", code)
	}
	if out := impostor.stdout.snapshot(); len(out) > 0 {
		t.Errorf("impostor received:\n%s", quoteLines(out))
	}

	u2 := c.startAs(t, "user_2")
	u1.send(t, "user_2/now the real one")
	u2.stdout.waitLine(t, messageFrom("user_1", "now the real one"))
	if got := u1.stdout.snapshot(); len(got) > 0 {
		t.Errorf("user_1 displayed:\n%s", quoteLines(got))
	}
}

// firstContact matches the notice of an identity pinned on first use.
var firstContact = regexp.MustCompile(`^First contact with (\S+): pinned identity ([A-Z2-7-]+)\. `)

// firstContacts returns the IDs that lines announce as pinned for name, in
// order.
func firstContacts(lines []string, name string) []string {
	var ids []string
	for _, l := range lines {
		if m := firstContact.FindStringSubmatch(l); m != nil && m[1] == name {
			ids = append(ids, m[2])
		}
	}
	return ids
}

// knownPeer returns the ID that the known_peers file in dir pins for name,
// "" if none, and checks that the file is the owner's only.
func knownPeer(t *testing.T, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, "known_peers")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("%s has mode %v, want 0600", path, perm)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == name {
			return f[1]
		}
	}
	return ""
}

// TestTrustOnFirstUse: with no IDs in the table, each side pins the other's
// on first contact and says so; a friend who comes back with a new identity
// is refused loudly until /forget, after which the new one is pinned.
func TestTrustOnFirstUse(t *testing.T) {
	c := newUnpinnedChat(t, "user_1", "user_2")
	u1 := c.startAs(t, "user_1")
	u2 := c.startAs(t, "user_2")

	u1.send(t, "user_2/hello stranger")
	u2.stdout.waitLine(t, messageFrom("user_1", "hello stranger"))
	u2.send(t, "user_1/hello back")
	u1.stdout.waitLine(t, messageFrom("user_2", "hello back"))

	ids := map[string]string{"user_1": idOf(t, c.dirs["user_1"], "user_1"), "user_2": idOf(t, c.dirs["user_2"], "user_2")}
	if ids["user_1"] == ids["user_2"] {
		t.Fatalf("both have identity %s", ids["user_1"])
	}
	for _, pair := range [][2]*process{{u1, u2}, {u2, u1}} {
		p, other := pair[0], pair[1].label
		p.stderr.waitLine(t, "First contact with "+other+": pinned identity ")
		if got := firstContacts(p.stderr.snapshot(), other); !slices.Equal(got, []string{ids[other]}) {
			t.Errorf("%s announced %v pinned for %s, want once %s (its --id):\n%s", p.label, got, other, ids[other], quoteLines(p.stderr.snapshot()))
		}
		if got := knownPeer(t, p.dataDir, other); got != ids[other] {
			t.Errorf("%s's known_peers pins %q for %s, want %s", p.label, got, other, ids[other])
		}
	}

	// user_2 comes back with a fresh data directory, hence a new identity.
	if code := u2.signal(t, syscall.SIGTERM); code != 0 {
		t.Errorf("user_2 exited with status %d after SIGTERM, want 0", code)
	}
	// Once user_1 has seen the old connection end, the next message dials.
	waitPoll(t, "user_1's log to say its connection to user_2 was lost", func() bool {
		b, err := os.ReadFile(filepath.Join(u1.dataDir, "p2pchat.log"))
		return err == nil && slices.ContainsFunc(strings.Split(string(b), "\n"), func(l string) bool {
			return strings.Contains(l, `msg="client connection lost"`) && strings.Contains(l, " friend=user_2 ")
		})
	})
	newDir := t.TempDir()
	u2 = start(t, "new user_2", []string{"--peers", c.peersFile, "--data-dir", newDir, "user_2"})
	u2.dataDir = newDir
	u2.waitGreeting(t, c.addr("user_2"))
	newID := idOf(t, newDir, "user_2")

	u1.send(t, "user_2/is that still you?")
	warning := u1.stderr.waitLine(t, "/forget user_2")
	if !strings.HasPrefix(warning, "WARNING: user_2's address "+c.addr("user_2")+": ") {
		t.Errorf("warning does not start with \"WARNING: user_2's address\": %q", warning)
	}
	for _, want := range []string{"pinned on first use", "/forget user_2", newID, ids["user_2"]} {
		if !strings.Contains(warning, want) {
			t.Errorf("warning %q does not say %q", warning, want)
		}
	}
	// The TLS handshake failed: nothing can have reached the new user_2.
	if got := u2.stdout.snapshot(); len(got) > 0 {
		t.Errorf("the new user_2 received a message before /forget:\n%s", quoteLines(got))
	}

	u1.send(t, "/forget user_2")
	u1.stderr.waitLine(t, "Forgot user_2's identity")
	u1.send(t, "user_2/welcome back")
	u2.stdout.waitLine(t, messageFrom("user_1", "welcome back"))
	u1.stderr.wait(t, "a second first contact with user_2", func(lines []string) bool {
		return len(firstContacts(lines, "user_2")) == 2
	})
	if got := firstContacts(u1.stderr.snapshot(), "user_2"); got[1] != newID {
		t.Errorf("user_1 pinned %s for the new user_2, want %s (its --id)", got[1], newID)
	}
	if got := knownPeer(t, u1.dataDir, "user_2"); got != newID {
		t.Errorf("user_1's known_peers pins %q for user_2, want %s", got, newID)
	}
	u2.stderr.waitLine(t, "First contact with user_1: pinned identity "+ids["user_1"])

	if code := u2.signal(t, syscall.SIGTERM); code != 0 {
		t.Errorf("new user_2 exited with status %d after SIGTERM, want 0", code)
	}
	// The message refused before /forget is either dropped or, if it waited
	// in a queue, delivered first once the new identity is accepted.
	got := u2.stdout.snapshot()
	welcomed := []string{messageFrom("user_1", "welcome back")}
	if !slices.Equal(got, welcomed) && !slices.Equal(got, append([]string{messageFrom("user_1", "is that still you?")}, welcomed...)) {
		t.Errorf("new user_2's stdout, want the message sent after /forget, after at most the one refused before:\n%s", quoteLines(got))
	}
	if got := u1.stdout.snapshot(); !slices.Equal(got, []string{messageFrom("user_2", "hello back")}) {
		t.Errorf("user_1's stdout:\n%s", quoteLines(got))
	}
}

// TestWhoami: /whoami shows the identity that --id prints.
func TestWhoami(t *testing.T) {
	c := newChat(t, "user_1", "user_2")
	u1 := c.startAs(t, "user_1")
	u1.send(t, "/whoami")
	line := u1.stderr.waitLine(t, "You are user_1")
	id := idOf(t, c.dirs["user_1"], "user_1")
	if !regexp.MustCompile(`\b` + regexp.QuoteMeta(id) + `\b`).MatchString(line) {
		t.Errorf("/whoami said %q, want it to show %s (as --id prints)", line, id)
	}
	if got := u1.stdout.snapshot(); len(got) > 0 {
		t.Errorf("stdout not empty:\n%s", quoteLines(got))
	}
}

// TestQueueAcrossRestarts: messages to a friend who is not running wait,
// say so, survive the sender's clean stop and its SIGKILL, and arrive in
// order, once, when the friend comes; /history shows their state.
func TestQueueAcrossRestarts(t *testing.T) {
	c := newChat(t, "user_1", "user_2")
	u1 := c.startAs(t, "user_1")
	u1.send(t, "user_2/one")
	u1.stderr.waitLine(t, "user_2 is offline: queued, 1 waiting")
	u1.send(t, "user_2/two")
	u1.stderr.waitLine(t, "user_2 is offline: queued, 2 waiting")
	if code := u1.signal(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit status %d", code)
	}

	u1 = c.startAs(t, "user_1")
	u1.stderr.waitLine(t, "2 message(s) to user_2 wait from before")
	u1.send(t, "user_2/three")
	u1.stderr.waitLine(t, "user_2 is offline: queued, 3 waiting")
	// The "queued" line comes after the commit: a SIGKILL now loses nothing.
	u1.cmd.Process.Kill()
	u1.wait(t)

	u1 = c.startAs(t, "user_1")
	u1.stderr.waitLine(t, "3 message(s) to user_2 wait from before")
	u2 := c.startAs(t, "user_2")
	u2.stdout.waitCount(t, "the three messages", 3, isMessage)
	u1.stderr.waitCount(t, "three deliveries", 3, func(l string) bool { return strings.HasPrefix(l, "Delivered to user_2: ") })
	want := []string{messageFrom("user_1", "one"), messageFrom("user_1", "two"), messageFrom("user_1", "three")}
	if got := u2.stdout.snapshot(); !slices.Equal(got, want) {
		t.Errorf("user_2's stdout:\n%s\nwant:\n%s", quoteLines(got), quoteLines(want))
	}

	u2.send(t, "user_1/got them")
	u1.stdout.waitLine(t, messageFrom("user_2", "got them"))
	u1.send(t, "/history user_2")
	last := u1.stderr.waitLine(t, "user_2 → you: got them")
	hist := u1.stderr.snapshot()
	i := slices.Index(hist, last)
	if i < 3 {
		t.Fatalf("history too short:\n%s", quoteLines(hist))
	}
	for j, text := range []string{"one", "two", "three"} {
		if l := hist[i-3+j]; !strings.Contains(l, "you → user_2: "+text) || !strings.Contains(l, "[delivered]") {
			t.Errorf("history line %q, want %q delivered", l, text)
		}
	}
}

// TestDataDirGuards: a second instance on a data directory in use, and a
// damaged database, are refused with one clear line and status 1, and the
// damaged file is left as it was.
func TestDataDirGuards(t *testing.T) {
	c := newChat(t, "user_1", "user_2")
	c.startAs(t, "user_1")
	second := start(t, "second", []string{"--peers", c.peersFile, "--data-dir", c.dirs["user_1"], "user_2"})
	if code := second.wait(t); code != 1 {
		t.Errorf("second instance on the same data dir: status %d, want 1", code)
	}
	if errs := second.stderr.snapshot(); len(errs) != 1 || !strings.Contains(errs[0], "is in use by another p2pchat") {
		t.Errorf("second instance said:\n%s", quoteLines(errs))
	}

	dir := c.dirs["user_2"]
	db := filepath.Join(dir, "p2pchat.sqlite")
	garbage := []byte(strings.Repeat("this is not a database\n", 500))
	if err := os.WriteFile(db, garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	p := start(t, "corrupt", []string{"--peers", c.peersFile, "--data-dir", dir, "user_2"})
	if code := p.wait(t); code != 1 {
		t.Errorf("damaged database: status %d, want 1", code)
	}
	errs := p.stderr.snapshot()
	if len(errs) != 1 || !strings.Contains(errs[0], db) || !strings.Contains(errs[0], "damaged") || !strings.Contains(errs[0], "refusing to start") {
		t.Errorf("damaged database, stderr:\n%s", quoteLines(errs))
	}
	if got, _ := os.ReadFile(db); string(got) != string(garbage) {
		t.Error("the damaged database was modified")
	}
}

// TestLongBacklog: a backlog far larger than the sockets' buffers (1,000,000
// messages queued for a friend who was away) is delivered whole. Writing
// it all while nobody took acks used to stall both sides.
func TestLongBacklog(t *testing.T) {
	const n = 1_000_000
	c := newChat(t, "user_1", "user_2")
	u1 := c.startAs(t, "user_1")
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "user_2/m%d\n", i)
	}
	go io.WriteString(u1.stdin, in.String())
	u1.stderr.waitLine(t, "user_2 is offline: queued")

	out, err := os.Create(filepath.Join(t.TempDir(), "user_2.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(binary, "--peers", c.peersFile, "--data-dir", c.dirs["user_2"], "user_2")
	cmd.Stdout = out
	stdin, _ := cmd.StdinPipe() // open: the instance keeps running
	defer stdin.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	lines := func() int {
		b, _ := os.ReadFile(out.Name())
		return bytes.Count(b, []byte("\n"))
	}
	deadline := time.Now().Add(90 * time.Second)
	for lines() < n {
		if time.Now().After(deadline) {
			t.Fatalf("user_2 showed %d of %d messages", lines(), n)
		}
		time.Sleep(100 * time.Millisecond) // polling a file: nothing to wait on
	}
	b, _ := os.ReadFile(out.Name())
	if last := fmt.Sprintf("Message from user_1: m%d\n", n-1); !bytes.HasSuffix(b, []byte(last)) {
		t.Errorf("the last line is not %q", last)
	}
}
