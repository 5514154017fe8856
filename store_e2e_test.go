package main

// End-to-end tests of the SQLite message store with the real binary: a
// database lost beside its identity, and a disk that fills up under a
// running instance.

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// shellAnswer types cmd into p, then /whoami, and returns the lines p wrote
// on stderr from the moment cmd was typed up to the answer to /whoami:
// lines are handled in order, so that answer closes cmd's.
func shellAnswer(t *testing.T, p *process, cmd string) []string {
	t.Helper()
	n := len(p.stderr.snapshot())
	p.send(t, cmd)
	p.send(t, "/whoami")
	isWhoami := func(l string) bool { return strings.HasPrefix(l, "You are "+p.label+",") }
	lines := p.stderr.wait(t, "the answer to "+cmd, func(lines []string) bool {
		return slices.ContainsFunc(lines[n:], isWhoami)
	})
	return lines[n : n+slices.IndexFunc(lines[n:], isWhoami)]
}

// waitingColumn runs /peers on p and returns the WAITING column, by friend.
func waitingColumn(t *testing.T, p *process) map[string]int {
	t.Helper()
	lines := shellAnswer(t, p, "/peers")
	i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, "FRIEND ") && strings.HasSuffix(l, " WAITING") })
	if i < 0 {
		t.Fatalf("%s's /peers printed no table:\n%s", p.label, quoteLines(lines))
	}
	out := map[string]int{}
	for _, l := range lines[i+1:] {
		f := strings.Fields(l)
		if len(f) == 0 {
			break // the identities follow
		}
		n, err := strconv.Atoi(f[len(f)-1])
		if err != nil {
			t.Fatalf("%s's /peers: no count at the end of %q", p.label, l)
		}
		out[f[0]] = n
	}
	return out
}

// linesBefore returns the lines of s before the first that contains sub,
// once there is one.
func linesBefore(t *testing.T, s *stream, sub string) []string {
	t.Helper()
	lines := s.wait(t, fmt.Sprintf("a line containing %q", sub), func(lines []string) bool {
		return slices.ContainsFunc(lines, func(l string) bool { return strings.Contains(l, sub) })
	})
	return lines[:slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, sub) })]
}

// queueMessages has p send n messages of text to friend, who is not
// running, and waits until p reports all of them waiting.
func queueMessages(t *testing.T, p *process, friend string, n int, text func(i int) string) {
	t.Helper()
	var in strings.Builder
	for i := range n {
		fmt.Fprintf(&in, "%s/%s\n", friend, text(i))
	}
	if _, err := io.WriteString(p.stdin, in.String()); err != nil {
		t.Fatal(err)
	}
	p.stderr.waitLine(t, fmt.Sprintf("%s is offline: queued, %d waiting", friend, n))
}

// TestMissingDatabaseNextToIdentity: an identity without its message
// database means the database was lost; the next start says so in one
// line, once, and runs. A data dir that never had one says nothing.
func TestMissingDatabaseNextToIdentity(t *testing.T) {
	lost := func(dir string) string {
		return fmt.Sprintf("p2pchat: no message database in %s; starting a new one: messages queued before are gone", dir)
	}
	tests := []struct {
		name   string
		before func(t *testing.T, c *chat) // what happened to user_1's data dir
		notice bool
	}{
		{
			name:   "identity made by --id",
			before: func(*testing.T, *chat) {},
		},
		{
			name: "a brand-new data dir",
			before: func(t *testing.T, c *chat) {
				// The table pins an identity made elsewhere; user_1's
				// own is new, so it does not get through, but it starts.
				c.dirs["user_1"] = filepath.Join(t.TempDir(), "new")
			},
		},
		{
			name: "database deleted after a run",
			before: func(t *testing.T, c *chat) {
				u1 := c.startAs(t, "user_1")
				queueMessages(t, u1, "user_2", 2, func(i int) string { return fmt.Sprint("lost ", i) })
				if code := u1.signal(t, syscall.SIGTERM); code != 0 {
					t.Fatalf("exit status %d after SIGTERM, want 0", code)
				}
				for _, suffix := range []string{"", "-wal", "-shm"} {
					if err := os.Remove(filepath.Join(c.dirs["user_1"], "p2pchat.sqlite"+suffix)); err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
				}
			},
			notice: true,
		},
		{
			name: "database deleted while running (SIGKILL)",
			before: func(t *testing.T, c *chat) {
				u1 := c.startAs(t, "user_1")
				queueMessages(t, u1, "user_2", 2, func(i int) string { return fmt.Sprint("lost ", i) })
				u1.cmd.Process.Kill()
				u1.wait(t)
				for _, suffix := range []string{"", "-wal", "-shm"} {
					if err := os.Remove(filepath.Join(c.dirs["user_1"], "p2pchat.sqlite"+suffix)); err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
				}
			},
			notice: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newChat(t, "user_1", "user_2")
			tt.before(t, c)
			dir := c.dirs["user_1"]
			for run := 1; run <= 2; run++ {
				u1 := c.startAs(t, "user_1")
				var want []string
				if tt.notice && run == 1 {
					want = append(want, lost(dir))
				}
				want = append(want, greetingLine("user_1", c.addr("user_1"), "user_2"))
				if run == 2 {
					want = append(want, "1 message(s) to user_2 wait from before; they go out as soon as user_2 can be reached.")
				}
				if got := waitingColumn(t, u1)["user_2"]; got != run-1 {
					t.Errorf("start %d: %d messages wait for user_2, want %d", run, got, run-1)
				}
				// The shell takes no line before it has said all it says
				// at start: that is all before the answer to /peers.
				if got := linesBefore(t, u1.stderr, "FRIEND "); !slices.Equal(got, want) {
					t.Errorf("start %d: stderr before the answer to /peers:\n%s\nwant exactly:\n%s", run, quoteLines(got), quoteLines(want))
				}
				// It runs: a message is recorded and reported.
				u1.send(t, fmt.Sprintf("user_2/run %d", run))
				u1.stderr.waitLine(t, fmt.Sprintf("user_2 is offline: queued, %d waiting", run))
				if code := u1.signal(t, syscall.SIGTERM); code != 0 {
					t.Errorf("start %d: exit status %d after SIGTERM, want 0", run, code)
				}
			}
		})
	}
}

// tinyDisk mounts a tmpfs of size bytes for the test and returns its path.
// It needs root: it skips the test otherwise, or fails it in CI, which runs
// as root.
func tinyDisk(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root and must run this test")
		}
		t.Skip("mounting a small filesystem needs root (CI runs this)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	// Registered after the mount: runs before TempDir's removal, and after
	// the cleanups of the processes started later, which kill them.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fillDisk writes a file in dir until its filesystem is full, and returns
// the file's path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			if !strings.Contains(err.Error(), "no space left") {
				t.Fatalf("filling %s: %v", dir, err)
			}
			return path
		}
	}
}

// chatIn is newChat with the given data directories (others get a new
// one each).
func chatIn(t *testing.T, dirs map[string]string, names ...string) *chat {
	t.Helper()
	c := &chat{names: names, ports: map[string]int{}, dirs: map[string]string{}}
	var b strings.Builder
	for i, port := range freePorts(t, len(names)) {
		name := names[i]
		c.ports[name] = port
		c.dirs[name] = dirs[name]
		if c.dirs[name] == "" {
			c.dirs[name] = t.TempDir()
		}
		fmt.Fprintf(&b, "%s\t127.0.0.1 %d  %s\n", name, port, idOf(t, c.dirs[name], name))
	}
	c.peersFile = writeFile(t, "peers", b.String())
	return c
}

// TestExitStatusAfterFailedWrite: a running instance whose disk fills up
// refuses messages with a line that says there is no space, sends again
// once there is space, without a restart, and exits with status 1 when
// its last write failed.
func TestExitStatusAfterFailedWrite(t *testing.T) {
	tests := []struct {
		name string
		size int // of the disk
	}{
		// With 64 MiB free at start, the store grows its WAL to 4 MB and
		// keeps the room in the database: the disk fills up, and writes go
		// on until that room is used.
		{name: "WAL grown at start", size: 128 << 20},
		{name: "little space at start", size: 32 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			disk := tinyDisk(t, tt.size)
			c := chatIn(t, map[string]string{"user_1": filepath.Join(disk, "user_1")}, "user_1", "user_2")
			u1 := c.startAs(t, "user_1")
			u2 := c.startAs(t, "user_2")
			u1.send(t, "user_2/before")
			u2.stdout.waitLine(t, messageFrom("user_1", "before"))

			filler := fillDisk(t, disk)
			if line := sendUntilRefused(t, u1, u2, "while full"); !strings.Contains(line, "no space left on device") {
				t.Errorf("refusal %q does not say there is no space left on device", line)
			}
			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			u1.send(t, "user_2/with space again")
			u2.stdout.waitLine(t, messageFrom("user_1", "with space again"))

			fillDisk(t, disk)
			if line := sendUntilRefused(t, u1, u2, "full again"); !strings.Contains(line, "no space left on device") {
				t.Errorf("refusal %q does not say there is no space left on device", line)
			}
			if code := u1.signal(t, syscall.SIGTERM); code != 1 {
				t.Errorf("exit status %d after SIGTERM with the last write failed, want 1", code)
			}
			if !slices.ContainsFunc(u1.stderr.snapshot(), func(l string) bool {
				return strings.Contains(l, "the last write to the message database failed") && strings.Contains(l, "no space left on device")
			}) {
				t.Errorf("user_1 did not say at exit that its last write failed:\n%s", quoteLines(lastLines(u1.stderr.snapshot(), 5)))
			}
			seen := map[string]bool{}
			for _, l := range u2.stdout.snapshot() {
				if seen[l] {
					t.Errorf("user_2 showed %.60q twice", l)
				}
				seen[l] = true
			}
		})
	}
}

// sendUntilRefused has u1 send long messages to u2, who runs, a chunk at a
// time, until one is refused, and returns the line refusing the first. On
// a full disk SQLite goes on writing where its files already have room (a
// WAL it rewinds, free pages in the database) until that runs out: up to
// some megabytes of messages.
func sendUntilRefused(t *testing.T, u1, u2 *process, what string) string {
	t.Helper()
	const (
		chunk  = 1000
		chunks = 100
	)
	isRefusal := func(l string) bool {
		return strings.HasPrefix(l, "cannot record the message to user_2 (\""+what+" ")
	}
	pad := strings.Repeat("x", 200)
	for n := range chunks {
		var in strings.Builder
		for i := range chunk {
			fmt.Fprintf(&in, "user_2/%s %d.%d %s\n", what, n, i, pad)
		}
		if _, err := io.WriteString(u1.stdin, in.String()); err != nil {
			t.Fatal(err)
		}
		last := messageFrom("user_1", fmt.Sprintf("%s %d.%d %s", what, n, chunk-1, pad))
		waitPoll(t, fmt.Sprintf("user_2 to show the last of chunk %d, or user_1 to refuse a message", n), func() bool {
			return slices.ContainsFunc(u1.stderr.snapshot(), isRefusal) || slices.Contains(u2.stdout.snapshot(), last)
		})
		if lines := u1.stderr.snapshot(); slices.ContainsFunc(lines, isRefusal) {
			t.Logf("the first refusal %s came in chunk %d of %d messages", what, n, chunk)
			return lines[slices.IndexFunc(lines, isRefusal)]
		}
	}
	t.Fatalf("%d messages %s, none refused", chunks*chunk, what)
	return ""
}

// lastLines returns the last n of lines.
func lastLines(lines []string, n int) []string { return lines[max(0, len(lines)-n):] }
