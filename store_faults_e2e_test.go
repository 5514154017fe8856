package main

// End-to-end tests of the message store's faults: "queued" only for what
// is durable whatever the terminal does, --check on a damaged database,
// and a full disk at start. They use the helpers of store_e2e_test.go and
// upgrade_e2e_test.go.

import (
	"bufio"
	"bytes"
	"database/sql"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	_ "modernc.org/sqlite" // to find a page in use, for TestCheckFlag
)

// Linux pipe controls, which package syscall does not name.
const (
	fSetPipeSize = 1031   // F_SETPIPE_SZ
	fionread     = 0x541b // FIONREAD
)

// setPipeSize sets the capacity of the pipe f belongs to.
func setPipeSize(t *testing.T, f *os.File, size int) {
	t.Helper()
	if _, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f.Fd(), fSetPipeSize, uintptr(size)); errno != 0 {
		t.Fatalf("F_SETPIPE_SZ %d: %v", size, errno)
	}
}

// pipeBuffered returns how many bytes wait in the pipe f reads from.
func pipeBuffered(t *testing.T, f *os.File) int {
	t.Helper()
	var n int32
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fionread, uintptr(unsafe.Pointer(&n))); errno != 0 {
		t.Fatalf("FIONREAD: %v", errno)
	}
	return int(n)
}

// queuedReport matches what the shell says of a message to user_2 that
// waits, once it is durable: K messages wait.
var queuedReport = regexp.MustCompile(`^user_2 is offline: queued, (\d+) waiting`)

// burstText is the i-th message of a burst: long, so that committing a
// burst takes a while.
func burstText(i int) string { return fmt.Sprintf("m %d %s", i, strings.Repeat("x", 200)) }

// TestQueuedIsDurableWhateverTheTerminal: a "queued, K waiting" line means
// K messages are on disk, whether the terminal reads along or is stuck. A
// burst of messages goes to user_1 for user_2, who is not running; user_1
// is killed as soon as a report reaches its stderr (read at once), or as
// soon as its stderr is full (nobody reads it, so the shell is stuck on
// it); every line that had reached its stderr is read afterwards. At the
// next start at least the largest K of them still waits, and user_2 then
// shows m 1..m K, each once, in order. The kill comes at a different
// moment of the work each time: each case runs a few rounds.
func TestQueuedIsDurableWhateverTheTerminal(t *testing.T) {
	const (
		burst  = 3000
		rounds = 5
	)
	tests := []struct {
		name string
		// read: the test reads stderr all along and kills user_1 at the
		// first report; otherwise nobody reads it until user_1 is dead.
		read bool
	}{
		{name: "stderr read at once", read: true},
		{name: "stderr blocked", read: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for round := 1; round <= rounds && !t.Failed(); round++ {
				c := newChat(t, "user_1", "user_2")
				reported := killAfterReports(t, c, burst, tt.read)
				maxK := 0
				for _, l := range reported {
					if m := queuedReport.FindStringSubmatch(l); m != nil {
						k, _ := strconv.Atoi(m[1])
						maxK = max(maxK, k)
					}
				}
				if maxK == 0 {
					t.Fatalf("round %d: user_1 reported no message queued:\n%s", round, quoteLines(reported))
				}
				waiting := checkWaiting(t, c, maxK)
				t.Logf("round %d: %d lines reached user_1's stderr, the largest K %d; %d waited after the kill", round, len(reported), maxK, waiting)
			}
		})
	}
}

// killAfterReports starts user_1 with its stderr a pipe, pipes it burst
// messages for user_2, SIGKILLs it after its first report of one queued
// (read) or once the pipe is full, and returns every line that reached
// its stderr.
func killAfterReports(t *testing.T, c *chat, burst int, read bool) []string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const pipeSize = 4096 // full after some 40 lines
	if !read {
		setPipeSize(t, w, pipeSize)
	}
	cmd := exec.Command(binary, "--peers", c.peersFile, "--data-dir", c.dirs["user_1"], "user_1")
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	cmd.Stderr = w
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close() // the child's copy is the only one: r ends when it dies
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { kill(cmd, exited) })

	var in strings.Builder
	for i := 1; i <= burst; i++ {
		fmt.Fprintf(&in, "user_2/%s\n", burstText(i))
	}
	go io.WriteString(stdin, in.String()) // ends with an error once user_1 is dead

	if read {
		lines := make(chan []string)
		go func() {
			var reported []string
			br := bufio.NewReader(r)
			for {
				line, err := br.ReadString('\n')
				if line != "" {
					reported = append(reported, strings.TrimSuffix(line, "\n"))
					if queuedReport.MatchString(line) {
						cmd.Process.Kill() // at once, while the next commit may still run
					}
				}
				if err != nil {
					lines <- reported
					return
				}
			}
		}()
		select {
		case reported := <-lines:
			<-exited
			return reported
		case <-time.After(waitTimeout):
			t.Fatalf("user_1 reported no message queued within %v", waitTimeout)
		}
	}
	// Watch the pipe fill without reading it, and kill the moment it is
	// full: then the shell is stuck on its next line.
	deadline := time.Now().Add(waitTimeout)
	for pipeBuffered(t, r) < pipeSize-256 {
		if time.Now().After(deadline) {
			t.Fatalf("user_1's stderr still holds only %d bytes after %v", pipeBuffered(t, r), waitTimeout)
		}
	}
	cmd.Process.Kill()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	<-exited
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// checkWaiting restarts user_1, checks that at least k messages of the
// burst wait for user_2, then starts user_2 and checks that it shows what
// waited, m 1.., each once, in order. It returns how many waited.
func checkWaiting(t *testing.T, c *chat, k int) int {
	t.Helper()
	u1 := c.startAs(t, "user_1")
	waiting := waitingColumn(t, u1)["user_2"]
	if waiting < k {
		t.Errorf("user_1 reported %d messages waiting before it was killed, and has %d after a restart", k, waiting)
	}
	u2 := c.startAs(t, "user_2")
	u2.stdout.waitCount(t, "messages from before the kill", waiting, isMessage)
	u1.send(t, "user_2/marker")
	u2.stdout.waitLine(t, messageFrom("user_1", "marker"))
	var want []string
	for i := 1; i <= waiting; i++ {
		want = append(want, messageFrom("user_1", burstText(i)))
	}
	want = append(want, messageFrom("user_1", "marker"))
	if got := u2.stdout.snapshot(); !slices.Equal(got, want) {
		t.Errorf("user_2 showed %d lines, want m 1..m %d once each, in order, then the marker; from the first that differs:\n%s",
			len(got), waiting, quoteLines(firstDifference(got, want)))
	}
	for _, p := range []*process{u1, u2} {
		if code := p.signal(t, syscall.SIGTERM); code != 0 {
			t.Errorf("%s exited with status %d after SIGTERM, want 0", p.label, code)
		}
	}
	return waiting
}

// firstDifference returns a few lines of got from the first that differs
// from want, each with its index.
func firstDifference(got, want []string) []string {
	i := 0
	for i < len(got) && i < len(want) && got[i] == want[i] {
		i++
	}
	var out []string
	for j := i; j < len(got) && j < i+5; j++ {
		out = append(out, fmt.Sprintf("%d: %s", j, got[j]))
	}
	if i < len(want) {
		out = append(out, fmt.Sprintf("(want at %d: %s)", i, want[i]))
	}
	return out
}

// damage overwrites n bytes of the file at path, from off, with garbage.
func damage(t *testing.T, path string, off int64, n int) {
	t.Helper()
	garbage := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{'p', '2', 'p'})
	rng.Read(garbage)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(garbage, off); err != nil {
		t.Fatal(err)
	}
}

// leafInUse returns where the middle one of the leaf pages of table
// starts in the SQLite database at path, and the page size. Most of the
// file can be free pages (the store keeps room in it), which no check
// reads: damage there damages nothing.
func leafInUse(t *testing.T, path, table string) (off, pageSize int64) {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.QueryRow(`PRAGMA page_size`).Scan(&pageSize); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno`, table)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var pages []int64
	for rows.Next() {
		var n int64
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		pages = append(pages, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(pages) < 3 {
		t.Fatalf("%s: table %s has %d leaf pages, want a few to damage one in the middle", path, table, len(pages))
	}
	page := pages[len(pages)/2]
	if page == 1 {
		t.Fatalf("%s: the middle leaf of %s is the first page", path, table)
	}
	return (page - 1) * pageSize, pageSize
}

// TestCheckFlag: p2pchat --check NAME runs SQLite's integrity check on
// NAME's database, beside a running instance too, says "ok" with status 0
// on a sound one, lists what it found with status 1 on a damaged one
// (leaving it as it was), and says in one line with status 1 that there
// is none.
func TestCheckFlag(t *testing.T) {
	// withMessages returns a data dir whose database holds a few hundred
	// messages queued for user_2, after a clean stop.
	withMessages := func(t *testing.T) string {
		c := newChat(t, "user_1", "user_2")
		u1 := c.startAs(t, "user_1")
		queueMessages(t, u1, "user_2", 300, func(i int) string {
			return fmt.Sprintf("message %d %s", i, strings.Repeat("x", 150))
		})
		if code := u1.signal(t, syscall.SIGTERM); code != 0 {
			t.Fatalf("exit status %d after SIGTERM, want 0", code)
		}
		return c.dirs["user_1"]
	}
	// damaged returns a data dir like withMessages's, with garbage over
	// part of a page of messages in the middle: n bytes from off in it.
	damaged := func(off func(pageSize int64) int64, n func(pageSize int64) int) func(t *testing.T) string {
		return func(t *testing.T) string {
			dir := withMessages(t)
			db := filepath.Join(dir, "p2pchat.sqlite")
			at, size := leafInUse(t, db, "messages")
			damage(t, db, at+off(size), n(size))
			return dir
		}
	}
	found := func(db string) *regexp.Regexp {
		return regexp.MustCompile(`^` + regexp.QuoteMeta(db) + ` is damaged; SQLite's integrity check found:\n(?:.+\n)*[^\n]*[Pp]age \d+[^\n]*\n`)
	}
	tests := []struct {
		name    string
		dir     func(t *testing.T) string // the data directory to check
		running bool                      // an instance runs on it meanwhile
		code    int
		stdout  func(db string) *regexp.Regexp // nil: empty
		stderr  func(db string) string         // the one line; "": none
	}{
		{
			name:   "sound",
			dir:    withMessages,
			stdout: func(db string) *regexp.Regexp { return regexp.MustCompile(`^` + regexp.QuoteMeta(db) + `: ok\n$`) },
		},
		{
			name:    "sound, while user_1 runs",
			dir:     withMessages,
			running: true,
			stdout:  func(db string) *regexp.Regexp { return regexp.MustCompile(`^` + regexp.QuoteMeta(db) + `: ok\n$`) },
		},
		{
			name:   "garbage within a page",
			dir:    damaged(func(int64) int64 { return 100 }, func(size int64) int { return int(size / 2) }),
			code:   1,
			stdout: found,
		},
		{
			name:   "a whole page of garbage",
			dir:    damaged(func(int64) int64 { return 0 }, func(size int64) int { return int(size) }),
			code:   1,
			stdout: found,
		},
		{
			name:   "no database",
			dir:    func(t *testing.T) string { return t.TempDir() },
			code:   1,
			stderr: func(db string) string { return "p2pchat: cannot check " + db + ": no such file or directory" },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir(t)
			db := filepath.Join(dir, "p2pchat.sqlite")
			before, _ := os.ReadFile(db)
			if tt.running {
				peers := writeFile(t, "peers", fmt.Sprintf("user_1 127.0.0.1 %d\n", freePorts(t, 1)[0]))
				p := start(t, "user_1", []string{"--peers", peers, "--data-dir", dir, "user_1"})
				p.dataDir = dir
				p.stderr.waitLine(t, "listening on")
			}
			p := start(t, "p2pchat --check", []string{"--check", "user_1", "--data-dir", dir})
			out, stdout, stderr := p.result(t, tt.code)
			switch {
			case tt.stdout == nil && out != "":
				t.Errorf("stdout not empty:\n%s", quoteLines(stdout))
			case tt.stdout != nil && !tt.stdout(db).MatchString(out):
				t.Errorf("stdout does not match %v:\n%s", tt.stdout(db), quoteLines(stdout))
			}
			switch {
			case tt.stderr == nil && len(stderr) > 0:
				t.Errorf("stderr not empty:\n%s", quoteLines(stderr))
			case tt.stderr != nil && !slices.Equal(stderr, []string{tt.stderr(db)}):
				t.Errorf("stderr:\n%s\nwant exactly:\n\t%q", quoteLines(stderr), tt.stderr(db))
			}
			after, _ := os.ReadFile(db)
			if !tt.running && !bytes.Equal(before, after) {
				t.Errorf("--check changed %s (%d bytes before, %d after)", db, len(before), len(after))
			}
		})
	}
}

// TestFullDiskAtStart: on a full disk, a start says in one line that there
// is no space (not that anything is damaged) and exits with status 1; once
// there is space again it starts, with nothing lost.
func TestFullDiskAtStart(t *testing.T) {
	tests := []struct {
		name string
		// earlier: user_1 ran in the data dir before the disk filled up,
		// and left two messages waiting.
		earlier bool
	}{
		{name: "new data dir"},
		{name: "data dir of an earlier run", earlier: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			disk := tinyDisk(t, 32<<20)
			dir := filepath.Join(disk, "user_1")
			var c *chat
			if tt.earlier {
				c = chatIn(t, map[string]string{"user_1": dir}, "user_1", "user_2")
				u1 := c.startAs(t, "user_1")
				queueMessages(t, u1, "user_2", 2, func(i int) string { return fmt.Sprint("before ", i) })
				if code := u1.signal(t, syscall.SIGTERM); code != 0 {
					t.Fatalf("exit status %d after SIGTERM, want 0", code)
				}
			} else {
				c = newChat(t, "user_1", "user_2")
				c.dirs["user_1"] = dir
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			filler := fillDisk(t, disk)

			p := start(t, "user_1 on a full disk", []string{"--peers", c.peersFile, "--data-dir", dir, "user_1"})
			p.dataDir = dir
			if code := p.wait(t); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			stderr := p.stderr.snapshot()
			if len(stderr) != 1 || !strings.Contains(stderr[0], "no space left") ||
				strings.Contains(strings.ToLower(stderr[0]), "damaged") || strings.Contains(strings.ToLower(stderr[0]), "corrupt") {
				t.Errorf("stderr, want one line saying there is no space left, and not that anything is damaged:\n%s", quoteLines(stderr))
			}
			if out := p.stdout.snapshot(); len(out) > 0 {
				t.Errorf("stdout not empty:\n%s", quoteLines(out))
			}

			if err := os.Remove(filler); err != nil {
				t.Fatal(err)
			}
			u1 := c.startAs(t, "user_1")
			want := []string{greetingLine("user_1", c.addr("user_1"), "user_2")}
			if tt.earlier {
				want = append(want, "2 message(s) to user_2 wait from before; they go out as soon as user_2 can be reached.")
			}
			wantWaiting := 0
			if tt.earlier {
				wantWaiting = 2
			}
			if got := waitingColumn(t, u1)["user_2"]; got != wantWaiting {
				t.Errorf("with space again, %d messages wait for user_2, want %d", got, wantWaiting)
			}
			if got := linesBefore(t, u1.stderr, "FRIEND "); !slices.Equal(got, want) {
				t.Errorf("with space again, stderr at start:\n%s\nwant exactly:\n%s", quoteLines(got), quoteLines(want))
			}
			if code := u1.signal(t, syscall.SIGTERM); code != 0 {
				t.Errorf("with space again: exit status %d after SIGTERM, want 0", code)
			}
		})
	}
}
