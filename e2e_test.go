package main

// End-to-end tests: real instances on loopback, run by the harness
// (harness_test.go), exchanging messages, refusing bad input and command
// lines, queueing for friends who are away, keeping their data directory.
// The tests of identities and trust are in identity_e2e_test.go, those of
// the store in store_e2e_test.go.

import (
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
	"strings"
	"syscall"
	"testing"
	"time"
)

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
			name:       "--id for a name not in the table",
			args:       []string{"--peers", c.peersFile, "--data-dir", dataDir, "--id", "user_9"},
			code:       2,
			stderr:     `"user_9" is not in the table of friends; it has user_1, user_2`,
			stderrOnly: true,
		},
		{
			name:       "--id for a name not in the default table",
			args:       []string{"--data-dir", dataDir, "--id", "alice"},
			code:       2,
			stderr:     `"alice" is not in the table of friends; it has user_1, user_2, user_3`,
			stderrOnly: true,
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
			out, stdout, stderr := p.result(t, tt.code)
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
