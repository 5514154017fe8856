//go:build unix

package shell_test

import (
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// The greeting names the friends, and how to write to them.
func TestGreeting(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob", "carol")
	s := startSession(t, w, "alice", options{})
	want := []string{
		"p2pchat 0.2.0: alice, listening on " + w.addr(t, "alice") + ".",
		"Your friends: bob, carol. Write bob/hello to send bob a message; /help for help.",
	}
	s.waitScreen(func(sn snapshot) bool {
		return sn.lines[0] == want[0] && sn.lines[1] == want[1] && sn.row() == "alice>"
	}, fmt.Sprintf("the greeting %q", want))
}

// The prompt counts the messages that wait for an acknowledgement, with
// /to too, and is plain again once they have all arrived.
func TestWaitingPrompt(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob", "carol") // carol is not running yet
	startFriend(t, w, "bob")
	s := startSession(t, w, "alice", options{})
	row := func(want string) {
		t.Helper()
		s.waitScreen(func(sn snapshot) bool {
			return sn.row() == want && sn.cursor.X == utf8.RuneCountInString(want)+1
		}, fmt.Sprintf("the prompt %q", want+" "))
	}

	s.typeKeys("carol/one\r")
	row("alice (1 waiting)>")
	s.typeKeys("/to carol\r")
	row("alice → carol (1 waiting)>")
	s.typeKeys("two\r")
	row("alice → carol (2 waiting)>")
	s.typeKeys("bob/quick\r") // acknowledged at once: the count does not stay up
	s.waitScreen(func(sn snapshot) bool { return sn.count("alice → carol (2 waiting)> bob/quick") == 1 }, "the line to bob")
	row("alice → carol (2 waiting)>")

	carol := startFriend(t, w, "carol")
	carol.send(t, "alice", "I'm here") // her connection sends alice's queue at once
	carol.expectMessage(t, "alice", "one")
	carol.expectMessage(t, "alice", "two")
	row("alice → carol>")
	s.typeKeys("/to\r")
	row("alice>")
	// Queued messages say when they arrive, once each.
	sn := s.screen()
	for _, text := range []string{"one", "two"} {
		if n := sn.count(fmt.Sprintf("Delivered to carol: %q", text)); n != 1 {
			t.Errorf("%d lines say %q was delivered, want 1:\n%s", n, text, sn)
		}
	}
}

// blackHole listens and accepts connections, then never answers: a friend
// that cannot acknowledge. It is closed when the test ends, or by close.
type blackHole struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	once  sync.Once
}

func newBlackHole(t *testing.T) *blackHole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackHole{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
		}
	}()
	t.Cleanup(b.close)
	return b
}

func (b *blackHole) port() int { return b.ln.Addr().(*net.TCPAddr).Port }

func (b *blackHole) close() {
	b.once.Do(func() {
		b.ln.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.conns {
			c.Close()
		}
	})
}

// A message that waits 2 s for its acknowledgement gets one line that says
// so and for whom; one reported queued before that has its queued line and
// no other.
func TestAckNotice(t *testing.T) {
	t.Parallel()
	hole := newBlackHole(t)
	w := newWorldPorts(t, map[string]int{"bob": hole.port(), "carol": deadPort(t)}, "alice", "bob", "carol")
	s := startSession(t, w, "alice", options{})

	s.typeKeys("carol/first\r") // refused at once: queued
	s.waitScreen(func(sn snapshot) bool { return sn.count("carol is offline: queued, 1 waiting") == 1 }, "carol's queued line")
	s.typeKeys("bob/anyone there?\r") // connected, never acknowledged
	const waits = `Still waiting for bob to acknowledge "anyone there?".`
	s.waitScreen(func(sn snapshot) bool {
		return sn.count(waits) == 1 && sn.row() == "alice (2 waiting)>"
	}, "the line saying the message to bob waits, and the prompt counting two")
	sn := s.screen()
	if n := sn.count("Still waiting"); n != 1 {
		t.Errorf("%d lines say a message waits, want 1 (bob's):\n%s", n, sn)
	}
	// A group message is one line too, until its report.
	s.typeKeys("@all/everyone?\r")
	const groupWaits = `Still waiting for bob, carol (@all) to acknowledge "everyone?".`
	s.waitScreen(func(sn snapshot) bool {
		return sn.count(groupWaits) == 1 && sn.row() == "alice (4 waiting)>"
	}, "the line saying the message to @all waits, and the prompt counting four")

	// Once bob's address refuses too, the message is queued; it was said
	// to wait, and is not said to again.
	hole.close()
	s.waitScreen(func(sn snapshot) bool {
		return sn.count("bob is offline: queued, 2 waiting") == 1 && sn.count("@all: queued for bob, carol") == 1
	}, "bob's queued line, and the report of the message to @all")
	s.typeKeys("/whoami\r")
	sn = s.waitScreen(func(sn snapshot) bool { return sn.count("You are alice") == 1 && sn.row() == "alice (4 waiting)>" }, "the answer to /whoami")
	if n := sn.count("Still waiting"); n != 2 {
		t.Errorf("%d lines say a message waits, want 2:\n%s", n, sn)
	}
}

// The bell rings for a message that arrives while nothing is typed, and
// not while something is, nor with /bell off, which is kept for the next
// run.
func TestBell(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	bob := startFriend(t, w, "bob")
	dir := t.TempDir()
	s := startSession(t, w, "alice", options{dataDir: dir})
	n := 0
	receive := func(text string, rings bool) {
		t.Helper()
		n++
		bob.send(t, "alice", text)
		s.waitScreen(func(sn snapshot) bool { return sn.count("Message from bob: "+text) == 1 }, "bob's message "+text)
		want := int64(0)
		if rings {
			want = 1
		}
		if got := s.bells.Swap(0); got != want {
			t.Errorf("message %d, %q: %d BEL written, want %d", n, text, got, want)
		}
	}

	receive("empty line", true)
	s.typeKeys("bob/dr")
	s.waitPrompt("bob/dr")
	receive("while typing", false)
	s.typeKeys("\x15") // Ctrl-U: the line is empty again
	s.waitPrompt("")
	receive("cleared", true)
	s.typeKeys("/whoami\r")
	s.waitScreen(func(sn snapshot) bool { return sn.count("You are alice") == 1 && sn.row() == "alice>" }, "the answer to /whoami")
	receive("after a command", true)
	s.typeKeys("/bell off\r")
	s.waitScreen(func(sn snapshot) bool {
		return sn.count("Messages no longer ring the bell.") == 1 && sn.row() == "alice>"
	}, "the bell turned off")
	receive("bell off", false)
	s.typeKeys("/quit\r")
	s.waitExit(0)

	s = startSession(t, w, "alice", options{dataDir: dir})
	receive("bell still off", false)
	s.typeKeys("/bell on\r")
	s.waitScreen(func(sn snapshot) bool { return sn.row() == "alice>" && sn.count("rings the bell") == 1 }, "the bell turned on")
	receive("bell on again", true)
}

// /time on starts every line with the time, and holds at the next run.
func TestTimeStamps(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	bob := startFriend(t, w, "bob")
	dir := t.TempDir()
	s := startSession(t, w, "alice", options{dataDir: dir})
	s.typeKeys("/time on\r")
	stamped := func(text string) *regexp.Regexp {
		return regexp.MustCompile(`^\d\d:\d\d ` + regexp.QuoteMeta(text) + `$`)
	}
	find := func(sn snapshot, re *regexp.Regexp) bool {
		for _, l := range sn.lines {
			if re.MatchString(l) {
				return true
			}
		}
		return false
	}
	s.waitScreen(func(sn snapshot) bool { return find(sn, stamped("Every line now starts with the time.")) }, "the stamped answer to /time on")
	bob.send(t, "alice", "hi")
	s.waitScreen(func(sn snapshot) bool { return find(sn, stamped("Message from bob: hi")) }, "bob's message, stamped")
	s.typeKeys("/quit\r")
	s.waitExit(0)

	s = startSession(t, w, "alice", options{dataDir: dir})
	bob.send(t, "alice", "again")
	s.waitScreen(func(sn snapshot) bool { return find(sn, stamped("Message from bob: again")) }, "bob's message, stamped, after a restart")
	s.typeKeys("/time off\r")
	s.waitScreen(func(sn snapshot) bool { return sn.find("Lines no longer start with the time.") >= 0 }, "the answer to /time off, not stamped")
	bob.send(t, "alice", "plain")
	s.waitScreen(func(sn snapshot) bool { return sn.find("Message from bob: plain") >= 0 }, "bob's message, not stamped")
}

// A line refused for being too long stays in the prompt, to be shortened.
func TestTooLongLineKept(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob")
	bob := startFriend(t, w, "bob")
	s := startSession(t, w, "alice", options{})
	text := strings.Repeat("a", 249) + "bc"
	s.typeKeys("bob/" + text + "\r")
	s.waitScreen(func(sn snapshot) bool {
		return sn.count("message too long: 251 characters, at most 250; nothing was sent") == 1
	}, "the line saying the message is too long")
	kept := s.prompt("bob/" + text)
	rows := (len(kept) + cols - 1) / cols
	s.waitScreen(func(sn snapshot) bool {
		y := sn.cursor.Y
		if y < rows+1 || sn.cursor.X != len(kept)%cols || !strings.HasPrefix(sn.lines[y-rows], "message too long") {
			return false
		}
		var typed strings.Builder
		for _, l := range sn.lines[y-rows+1 : y+1] {
			fmt.Fprintf(&typed, "%-*s", cols, l)
		}
		return strings.TrimRight(typed.String(), " ") == kept
	}, "the refused line in the prompt again, below the line about it, the cursor at its end")
	s.typeKeys("\x7f\r") // Backspace drops the c
	bob.expectMessage(t, "alice", text[:250])
	s.waitPrompt("")
}

// Tab completes the friend that /history, /forget and /to take, and the
// group that /history and /to take.
func TestTabCompletesArguments(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "alice", "bob", "carol", "cat")
	s := startSession(t, w, "alice", options{})
	const killLine = "\x15"
	for _, c := range []struct{ keys, want string }{
		{"/to b\t", "/to bob "},
		{"/history c\t", "/history ca"},
		{"/history car\t", "/history carol "},
		{"/forget ca\tt\t", "/forget cat "},
		{"/history @a\t", "/history @all "},
		{"/to @\t", "/to @all "},
		{"/forget @\t", "/forget @"}, // no groups there
	} {
		s.typeKeys(c.keys)
		s.waitPrompt(c.want)
		s.typeKeys(killLine)
		s.waitPrompt("")
	}
}

// The first contact with a friend says so with the ID on a line of its
// own, and the words whole.
func TestFirstContactLines(t *testing.T) {
	t.Parallel()
	long := "a_friend_with_a_name_of_32_bytes" // as long as a name may be
	w := newWorld(t, "alice", long)
	f := startFriend(t, w, long)
	s := startSession(t, w, "alice", options{})
	f.send(t, "alice", "hello")
	id := f.ID().String()
	sn := s.waitScreen(func(sn snapshot) bool { return sn.find(id) >= 0 && sn.count("Message from "+long+": hello") == 1 }, "the ID on a line of its own, and the message")
	y := sn.find(id)
	if got, want := sn.lines[y-1], "First contact with "+long+": pinned the identity"; got != want {
		t.Errorf("the line above the ID is %q, want %q:\n%s", got, want, sn)
	}
	if got, want := sn.lines[y+1], "Check it against what "+long+"'s /whoami shows."; got != want {
		t.Errorf("the line below the ID is %q, want %q:\n%s", got, want, sn)
	}
}
