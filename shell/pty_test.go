//go:build unix

package shell_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/hinshun/vt10x"
)

// A message that arrives while the person is typing is printed above the
// prompt, and the half-typed line is redrawn as it was, cursor included.
func TestMessageAboveHalfTypedLine(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	bob := startFriend(t, w, "bob")
	s := startSession(t, w, "alice", options{})

	s.typeKeys("bob/hel")
	s.waitPrompt("bob/hel")
	bob.send(t, "alice", "ping")
	s.waitScreen(func(sn snapshot) bool {
		return sn.find("Message from bob: ping") == sn.cursor.Y-1 &&
			sn.row() == "alice> bob/hel" && sn.cursor.X == len("alice> bob/hel") &&
			sn.count("alice>") == 1
	}, `"Message from bob: ping" right above the prompt line "alice> bob/hel", the cursor at its end, and no other prompt`)

	s.typeKeys("lo\r")
	bob.expectMessage(t, "alice", "hello")
	s.waitPrompt("")
}

// The same with a burst of messages arriving between keys.
func TestBurstAboveHalfTypedLine(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	bob := startFriend(t, w, "bob")
	s := startSession(t, w, "alice", options{})

	s.typeKeys("bob/")
	s.waitPrompt("bob/")
	const n = 8
	keys := map[int]string{2: "h", 5: "e", 7: "l"}
	for i := 1; i <= n; i++ {
		bob.send(t, "alice", fmt.Sprintf("burst %d", i))
		if k, ok := keys[i]; ok {
			s.typeKeys(k)
		}
	}
	s.waitScreen(func(sn snapshot) bool {
		if sn.row() != "alice> bob/hel" || sn.cursor.X != len("alice> bob/hel") || sn.count("alice>") != 1 {
			return false
		}
		// The messages in order, each on its own row, the last one right
		// above the prompt.
		first := sn.cursor.Y - n
		if first < 0 {
			return false
		}
		for i := 1; i <= n; i++ {
			if sn.lines[first+i-1] != fmt.Sprintf("Message from bob: burst %d", i) {
				return false
			}
		}
		return true
	}, fmt.Sprintf(`"Message from bob: burst 1" to %d in order above the prompt line "alice> bob/hel", the cursor at its end`, n))

	s.typeKeys("lo\r")
	bob.expectMessage(t, "alice", "hello")
}

// Tab completes friends' names up to the '/', the common part of several,
// and commands.
func TestTabCompletion(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob", "carol", "cat")
	s := startSession(t, w, "alice", options{})

	const killLine = "\x15" // Ctrl-U
	s.typeKeys("b\t")
	s.waitPrompt("bob/")
	s.typeKeys(killLine)
	s.waitPrompt("")

	s.typeKeys("c\t")
	s.waitPrompt("ca")
	s.typeKeys("r\t")
	s.waitPrompt("carol/")
	s.typeKeys(killLine)
	s.waitPrompt("")

	s.typeKeys("/he\t")
	s.waitPrompt("/help ")
	s.typeKeys("\r")
	s.waitScreen(func(sn snapshot) bool {
		return sn.count("Write friend/message to send a message") == 1 && sn.row() == "alice>" && sn.cursor.X == len("alice> ")
	}, "the help, then an empty prompt")
}

// Ctrl-C drops the half-typed line and nothing else: the program goes on.
func TestCtrlCClearsLine(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	bob := startFriend(t, w, "bob")
	s := startSession(t, w, "alice", options{})

	s.typeKeys("bob/half")
	s.waitPrompt("bob/half")
	s.typeKeys("\x03")
	s.waitScreen(func(sn snapshot) bool {
		return sn.cursor.Y > 0 && strings.HasPrefix(sn.lines[sn.cursor.Y-1], "alice> bob/half") &&
			sn.row() == "alice>" && sn.cursor.X == len("alice> ")
	}, "an empty prompt below the interrupted line")
	s.running()

	s.typeKeys("bob/after\r")
	bob.expectMessage(t, "alice", "after") // and not "half" first
	bob.send(t, "alice", "still there?")
	s.waitScreen(func(sn snapshot) bool {
		return sn.find("Message from bob: still there?") == sn.cursor.Y-1 && sn.row() == "alice>"
	}, "bob's message above an empty prompt")
	s.running()
}

// What was typed is kept, owner-only, and Up brings it back after a restart.
func TestHistoryAcrossRestarts(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	bob := startFriend(t, w, "bob")
	dir := t.TempDir()

	s := startSession(t, w, "alice", options{dataDir: dir})
	s.typeKeys("bob/remember me\r")
	bob.expectMessage(t, "alice", "remember me")
	s.waitPrompt("")
	s.typeKeys("/quit\r")
	s.waitExit(0)

	st, err := os.Stat(filepath.Join(dir, "history"))
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("history file has mode %v, want 0600", perm)
	}

	s = startSession(t, w, "alice", options{dataDir: dir})
	const up = "\x1b[A"
	s.typeKeys(up)
	s.waitPrompt("/quit")
	s.typeKeys(up)
	s.waitPrompt("bob/remember me")
	s.typeKeys("\r")
	bob.expectMessage(t, "alice", "remember me")
}

// readline rewrites a history file longer than its limit through a new file
// it creates world-readable; the file must stay the owner's alone.
func TestLongHistoryStaysPrivate(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	dir := t.TempDir()
	var lines strings.Builder
	for i := range 600 {
		fmt.Fprintf(&lines, "bob/old line %d\n", i)
	}
	path := filepath.Join(dir, "history")
	if err := os.WriteFile(path, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startSession(t, w, "alice", options{dataDir: dir})
	s.typeKeys("\x1b[A")
	s.waitPrompt("bob/old line 599")
	s.typeKeys("\x15/quit\r") // Ctrl-U clears the recalled line
	s.waitExit(0)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("history file has mode %v after readline trimmed it, want 0600", perm)
	}
}

// Every line the shell refuses gets one line saying why, sends nothing, and
// gives the prompt back. (One too long stays in it: TestTooLongLineKept.)
func TestRefusedInput(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob", "carol")
	bob := startFriend(t, w, "bob")
	s := startSession(t, w, "alice", options{})

	for _, c := range []struct{ in, want string }{
		{"zed/hi", `unknown friend "zed"`},
		{"hello", `no "/" in that line`},
		{"alice/hi", "you cannot send a message to yourself"},
		{"bob/", "empty message"},
		{"/nope", "unknown command /nope"},
	} {
		s.typeKeys(c.in + "\r")
		echo := s.prompt(c.in)
		echoRows := (utf8.RuneCountInString(echo) + cols - 1) / cols
		s.waitScreen(func(sn snapshot) bool {
			y := sn.cursor.Y
			if sn.row() != "alice>" || sn.cursor.X != len("alice> ") || y < 1+echoRows {
				return false
			}
			if !strings.Contains(sn.lines[y-1], c.want) {
				return false
			}
			// Right above the one line of the error, the line as typed.
			var typed strings.Builder
			for _, l := range sn.lines[y-1-echoRows : y-1] {
				fmt.Fprintf(&typed, "%-*s", cols, l)
			}
			return strings.TrimRight(typed.String(), " ") == echo
		}, fmt.Sprintf("the line %q, then one line containing %q, then an empty prompt", shorten(c.in), c.want))
	}

	// Had anything been sent, it would arrive before this.
	s.typeKeys("bob/sentinel\r")
	bob.expectMessage(t, "alice", "sentinel")
}

func shorten(s string) string {
	if len(s) > 20 {
		return fmt.Sprintf("%s... (%d characters)", s[:20], len(s))
	}
	return s
}

// Ctrl-D on an empty line and /quit leave with status 0.
func TestQuit(t *testing.T) {
	t.Parallel()
	for _, keys := range []string{"\x04", "/quit\r"} {
		t.Run(fmt.Sprintf("%q", keys), func(t *testing.T) {
			t.Parallel()
			w := newWorld(t, "alice", "bob")
			s := startSession(t, w, "alice", options{})
			s.typeKeys(keys)
			s.waitExit(0)
		})
	}
}

// SIGTERM (or SIGINT from outside) leaves with status 0 and the terminal's
// cursor at the start of a line of its own, below the prompt.
func TestSignal(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	s := startSession(t, w, "alice", options{})
	s.typeKeys("bob/draft")
	s.waitPrompt("bob/draft")
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	s.waitExit(0)
	s.waitScreen(func(sn snapshot) bool {
		return sn.cursor.X == 0 && sn.cursor.Y > 0 && sn.lines[sn.cursor.Y-1] == "alice> bob/draft" && sn.row() == ""
	}, "the cursor at the start of the line below the prompt")
}

// Text from the network cannot clear the screen, change colours or ring the
// bell: control characters are shown, neutralised.
func TestHostileText(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	bob := startFriend(t, w, "bob")
	s := startSession(t, w, "alice", options{})

	bob.send(t, "alice", "harmless")
	s.waitScreen(func(sn snapshot) bool {
		return sn.find("Message from bob: harmless") >= 0
	}, "bob's first message")
	bob.send(t, "alice", "evil\x1b[2J\x1b[31mred\x07")
	bob.send(t, "alice", "title\x1b]0;pwned\x07")
	sn := s.waitScreen(func(sn snapshot) bool {
		harmless := sn.find("Message from bob: harmless")
		evil := sn.find(`Message from bob: evil\x1b[2J\x1b[31mred\x07`)
		title := sn.find(`Message from bob: title\x1b]0;pwned\x07`)
		return strings.HasPrefix(sn.lines[0], "p2pchat ") &&
			harmless >= 1 && evil == harmless+1 && title == evil+1 && title == sn.cursor.Y-1 &&
			sn.row() == "alice>" && sn.cursor.X == len("alice> ")
	}, "the greeting and both messages, the escapes shown as text, above an empty prompt")
	for y := range sn.lines {
		for x := 0; x < cols; x++ {
			if fg := s.cell(x, y).FG; fg != vt10x.DefaultFG {
				t.Fatalf("colour %d at column %d, row %d:\n%s", fg, x, y, sn)
			}
		}
	}
	s.term.Lock()
	title := s.term.Title()
	s.term.Unlock()
	if title != "" {
		t.Errorf("the window title is %q", title)
	}
}

// A friend nobody answers for gives one line that says so.
func TestUnreachableFriend(t *testing.T) {
	t.Parallel()
	w := newWorldPorts(t, map[string]int{"carol": deadPort(t)}, "alice", "bob", "carol")
	s := startSession(t, w, "alice", options{})

	s.typeKeys("carol/hi\r")
	want := "cannot reach carol at " + w.addr(t, "carol") + ": connection refused"
	s.waitScreen(func(sn snapshot) bool {
		return sn.count(want) == 1 && sn.row() == "alice (1 waiting)>" && sn.cursor.X == len("alice (1 waiting)> ")
	}, fmt.Sprintf("one line containing %q, and an empty prompt counting the message", want))
}

// With colour on, a friend's name is drawn in a colour that is not red, the
// rest of the message in the default colour, and problems in red.
func TestColor(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	bob := startFriend(t, w, "bob")
	s := startSession(t, w, "alice", options{color: true})

	bob.send(t, "alice", "hi")
	sn := s.waitScreen(func(sn snapshot) bool {
		return sn.find("Message from bob: hi") >= 0
	}, "bob's message")
	y := sn.find("Message from bob: hi")
	fg := func(x int) vt10x.Color { return s.cell(x, y).FG }
	const name = len("Message from ")
	for x := 0; x < len("Message from bob: hi"); x++ {
		isName := name <= x && x < name+len("bob")
		switch c := fg(x); {
		case isName && (c == vt10x.DefaultFG || c == vt10x.Red || c == vt10x.LightRed):
			t.Errorf("column %d, in bob's name, has colour %d", x, c)
		case isName && c != fg(name):
			t.Errorf("bob's name is in colours %d and %d", fg(name), c)
		case !isName && c != vt10x.DefaultFG:
			t.Errorf("column %d, not in bob's name, has colour %d", x, c)
		}
	}

	s.typeKeys("zed/hi\r")
	sn = s.waitScreen(func(sn snapshot) bool {
		return sn.cursor.Y > 0 && strings.HasPrefix(sn.lines[sn.cursor.Y-1], "unknown friend") && sn.row() == "alice>"
	}, "the problem line")
	if c := s.cell(0, sn.cursor.Y-1).FG; c != vt10x.Red {
		t.Errorf("the problem line has colour %d, want red (%d):\n%s", c, vt10x.Red, sn)
	}
}

// Keys that crashed chzyer/readline v1.5.1 (Ctrl-K while the Tab candidate
// list shows), and Home and End as tmux and screen send them, which it
// ignored. ergochat/readline handles both.
func TestReadlineKeys(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "user_2", "user_3")
	s := startSession(t, w, "alice", options{})
	const killLine, killToEnd = "\x15", "\x0b" // Ctrl-U, Ctrl-K
	for _, keys := range []string{"/h\t\t" + killToEnd, "us\t\t\t" + killToEnd} {
		s.typeKeys(keys)
		s.typeKeys(killLine + "/whoami\r")
		s.waitScreen(func(sn snapshot) bool {
			return sn.count("You are alice") >= 1 && sn.row() == "alice>"
		}, "after "+strconv.Quote(keys)+", the shell still answering")
		s.running()
		s.typeKeys("\x0c") // Ctrl-L: a clean screen for the next round
		s.waitScreen(func(sn snapshot) bool { return sn.count("You are alice") == 0 && sn.row() == "alice>" }, "a cleared screen")
	}
	s.typeKeys("user_2/abc" + "\x1b[1~" + "X" + "\x1b[4~" + "Y")
	s.waitPrompt("Xuser_2/abcY")
}

// /to shows the friend in the prompt, and a line without NAME/ goes there.
func TestTalkToPrompt(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	bob := startFriend(t, w, "bob")
	s := startSession(t, w, "alice", options{})
	s.typeKeys("/to bob\r")
	s.waitScreen(func(sn snapshot) bool { return sn.row() == "alice → bob>" }, "the prompt naming bob")
	s.typeKeys("see http://x\r")
	bob.expectMessage(t, "alice", "see http://x")
	s.typeKeys("/to\r")
	s.waitScreen(func(sn snapshot) bool { return sn.row() == "alice>" }, "the plain prompt again")
}
