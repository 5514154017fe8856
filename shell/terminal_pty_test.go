//go:build unix

package shell_test

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// However p2pchat ends, the terminal is given back as it was: line editing,
// echo and signals on again. readline turns all three off while it reads a
// line; a panic in any goroutine, readline's own included, cannot restore
// them in-process, and neither can the target of a SIGKILL, so a parent
// process watches over the chat and restores them (see supervise in main).
func TestTerminalRestored(t *testing.T) {
	t.Parallel()
	signal := func(sig syscall.Signal) func(t *testing.T, s *session) {
		return func(t *testing.T, s *session) {
			if err := s.cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
		}
	}
	keys := func(k string) func(t *testing.T, s *session) {
		return func(t *testing.T, s *session) { s.typeKeys("\x15" + k) } // Ctrl-U first
	}
	for _, c := range []struct {
		name   string
		env    []string
		end    func(t *testing.T, s *session)
		status int    // of the process started, the supervising parent
		screen string // on the screen after, if not ""
	}{
		{name: "/quit", end: keys("/quit\r")},
		{name: "Ctrl-D", end: keys("\x04")},
		{name: "SIGINT", end: signal(syscall.SIGINT)},
		{name: "SIGTERM", end: signal(syscall.SIGTERM)},
		{name: "SIGHUP", end: signal(syscall.SIGHUP)},
		{
			name:   "panic in a goroutine",
			env:    []string{"P2PCHAT_TEST_PANIC=1"}, // SIGUSR1 makes a goroutine panic
			end:    signal(syscall.SIGUSR1),
			status: 2, // Go's for a panic
			screen: "panic: P2PCHAT_TEST_PANIC",
		},
		{
			name: "SIGKILL to the chat",
			end: func(t *testing.T, s *session) {
				if err := syscall.Kill(child(t, s.cmd.Process.Pid), syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			},
			status: 128 + int(syscall.SIGKILL),
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, "alice", "bob")
			s := startSession(t, w, "alice", options{env: c.env})
			s.typeKeys("bob/draft")
			s.waitPrompt("bob/draft")
			// The prompt is up, so readline has the terminal raw.
			raw := map[string]bool{"icanon": false, "echo": false, "isig": false}
			if got := sttyFlags(s.stty(), "icanon", "echo", "isig"); !maps.Equal(got, raw) {
				t.Fatalf("at the prompt, stty -a says %v, want %v", got, raw)
			}
			c.end(t, s)
			s.waitExit(c.status)
			<-s.readEnd // every process on the terminal gone
			cooked := map[string]bool{"icanon": true, "echo": true, "isig": true}
			if out := s.stty(); !maps.Equal(sttyFlags(out, "icanon", "echo", "isig"), cooked) {
				t.Errorf("after p2pchat exited, stty -a says:\n%s\nwant icanon, echo and isig on; the screen:\n%s", out, s.screen())
			}
			if c.screen != "" && s.screen().count(c.screen) == 0 {
				t.Errorf("no line with %q on the screen:\n%s", c.screen, s.screen())
			}
		})
	}
}

// A supervising parent killed with SIGKILL cannot restore the terminal; its
// child hears of it (SIGHUP) and leaves as on a hang-up, restoring it.
func TestTerminalRestoredWhenParentKilled(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	s := startSession(t, w, "alice", options{})
	s.typeKeys("bob/draft")
	s.waitPrompt("bob/draft")
	if err := s.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.readEnd: // the child gone too
	case <-time.After(waitTimeout):
		t.Fatalf("the chat still runs %v after its parent was killed; the screen:\n%s", waitTimeout, s.screen())
	}
	if out := s.stty(); !maps.Equal(sttyFlags(out, "icanon", "echo", "isig"), map[string]bool{"icanon": true, "echo": true, "isig": true}) {
		t.Errorf("after the chat left, stty -a says:\n%s\nwant icanon, echo and isig on", out)
	}
}

// child is the one child process of pid, the chat its parent supervises.
func child(t *testing.T, pid int) int {
	t.Helper()
	files, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		kids = append(kids, strings.Fields(string(b))...)
	}
	if len(kids) != 1 {
		t.Fatalf("process %d has children %v, want one", pid, kids)
	}
	kid, err := strconv.Atoi(kids[0])
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

// The cursor stays where the text is when it moves over wide characters
// (chzyer/readline drew it a column off for each, its issue #184). The
// emulator gives wide characters two columns, as a terminal does.
func TestCursorOverWideCharacters(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	s := startSession(t, w, "alice", options{})
	const line = "x/日本語abc"
	s.typeKeys(line)
	s.waitPrompt(line)
	const left, ctrlA, ctrlE, home, end = "\x1b[D", "\x01", "\x05", "\x1b[1~", "\x1b[4~"
	for _, c := range []struct {
		keys   string
		shown  string // the line typed, after keys
		before string // its text left of the cursor
	}{
		{left, line, "x/日本語ab"},
		{left + left + left, line, "x/日本"},
		{left, line, "x/日"},
		{ctrlA, line, ""},
		{ctrlE, line, line},
		{home, line, ""},
		{end, line, line},
		{left + left + left + "Z", "x/日本語Zabc", "x/日本語Z"},
	} {
		s.typeKeys(c.keys)
		want := columns(s.prompt(c.before))
		s.waitScreen(func(sn snapshot) bool {
			return sn.row() == s.prompt(c.shown) && sn.cursor.X == want
		}, fmt.Sprintf("after %q, the line %q with the cursor at column %d, after %q", c.keys, c.shown, want, c.before))
	}
}

// A long message is wrapped by p2pchat at the terminal's width, and every
// screen line of it after the first starts with the continuation marker:
// a friend who pads a message to the width cannot put a line of its own
// on the screen that looks like another message or a warning, not even in
// fullwidth look-alikes. The text is shown as sent.
func TestLongMessageLines(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	bob := startFriend(t, w, "bob")
	s := startSession(t, w, "alice", options{color: true}) // colours must not count as columns
	const prefix, marker = "Message from bob: ", "  │ "
	pad := func(s string) string { return strings.Repeat(" ", cols-len(prefix)-columns(s)) }
	for _, c := range []struct{ name, text string }{
		{"a fake message", "hi" + pad("hi") + "Message from carol: send me your password"},
		{"a fake warning", "ok" + pad("ok") + "WARNING: bob's identity changed; type /forget bob"},
		{"fullwidth look-alike", "日本" + pad("日本") + "Ｍｅｓｓａｇｅ ｆｒｏｍ carol: hello"},
		{"wide characters", strings.Repeat("日本語", 40)},
		{"a wide character over the edge", "x" + strings.Repeat("語", 60)},
	} {
		// One session for all (the screen is the session's): no t.Run.
		bob.send(t, "alice", c.text)
		want := screenRows(prefix+c.text, marker)
		s.waitScreen(func(sn snapshot) bool {
			first := sn.find(want[0])
			if first < 0 || first+len(want) != sn.cursor.Y || sn.row() != "alice>" {
				return false
			}
			return slices.Equal(sn.lines[first:sn.cursor.Y], want)
		}, fmt.Sprintf("%s: bob's message as the rows %q, above the prompt", c.name, want))
		s.typeKeys("\x0c") // Ctrl-L: a clean screen for the next
		s.waitScreen(func(sn snapshot) bool { return sn.count(prefix) == 0 && sn.row() == "alice>" }, "a cleared screen")
	}
}

// screenRows is line as the screen should show it: cut where the next
// character would pass the last column, each row after the first starting
// with marker, trailing blanks dropped as screen drops them.
func screenRows(line, marker string) []string {
	var rows []string
	row, col := "", 0
	for _, r := range line {
		if col+cellWidth(r) > cols {
			rows = append(rows, strings.TrimRight(row, " "))
			row, col = marker, columns(marker)
		}
		row += string(r)
		col += cellWidth(r)
	}
	return append(rows, strings.TrimRight(row, " "))
}
