//go:build linux

package main

// Friends carry each other's mail across NATs (issue 13), proved on the
// small internet of nat_harness_test.go with the real binary: alice and
// carol behind routers of their own, each "-" in the table (no address:
// never dialled), bob public.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// natCarry is natApart with alice and carol as "-" in the table.
type natCarry struct {
	*natWorld
	peers string
}

func newNATCarry(t *testing.T, layout natLayout, noAddress ...string) *natCarry {
	t.Helper()
	w := newNATWorld(t, layout)
	peers := w.table(t, func(name string) string {
		if slices.Contains(noAddress, name) {
			return "-"
		}
		return w.addr[name].String()
	})
	return &natCarry{natWorld: w, peers: peers}
}

// start runs name with the carry table. One with no address listens on
// every interface and keeps a connection open to bob.
func (w *natCarry) start(t *testing.T, name string, noAddress bool) *nsInstance {
	t.Helper()
	args := []string{"netns", "exec", w.ns[name], binary, "--peers", w.peers, "--data-dir", w.dirs[name], name}
	cmd := exec.Command(w.ip, args...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &nsInstance{process: startCmd(t, name, cmd), name: name}
	p.dataDir = w.dirs[name]
	addr := w.addr[name].String()
	if noAddress {
		addr = "::"
	}
	p.stderr.waitLine(t, "listening on "+net.JoinHostPort(addr, "50000"))
	return p
}

// viaBob is how carol shows a message alice wrote that bob carried.
func viaBob(text string) string { return messageFrom("alice", text+" (via bob)") }

// TestCarriedAcrossNATs: alice and carol, each behind a NAT of their own,
// cannot reach each other; bob carries. Each case starts the three anew.
func TestCarriedAcrossNATs(t *testing.T) {
	t.Run("both online", func(t *testing.T) {
		w := newNATCarry(t, natApart, "alice", "carol")
		bob := w.start(t, "bob", false)
		carol := w.start(t, "carol", true)
		alice := w.start(t, "alice", true)
		const text = "the key is under the blue pot"
		sent := time.Now()
		alice.send(t, "carol/"+text)
		carol.stdout.waitLine(t, viaBob(text))
		t.Logf("alice to carol through bob, both behind NAT: shown %v after Enter", time.Since(sent).Round(time.Millisecond))
		alice.stderr.waitLine(t, "Delivered to carol (via bob)")
		// Bob kept nothing of it that he could read.
		bob.send(t, "/quit")
		bob.wait(t)
		assertNoPlaintext(t, w.dirs["bob"], text)
		if got := countLines(carol.stdout.snapshot(), viaBob(text)); got != 1 {
			t.Errorf("carol showed it %d times, want once", got)
		}
	})

	t.Run("recipient offline, sender leaves", func(t *testing.T) {
		w := newNATCarry(t, natApart, "alice", "carol")
		w.start(t, "bob", false)
		carol := w.start(t, "carol", true)
		alice := w.start(t, "alice", true)
		// alice needs carol's card once: they meet through bob.
		alice.send(t, "carol/first, while you are here")
		carol.stdout.waitLine(t, viaBob("first, while you are here"))
		alice.stderr.waitLine(t, "Delivered to carol (via bob)")
		carol.send(t, "/quit")
		carol.wait(t)

		alice.send(t, "carol/for when you are back")
		alice.stderr.waitLine(t, `bob carries "for when you are back" to them`)
		alice.send(t, "/quit")
		alice.wait(t)

		carol = w.start(t, "carol", true)
		carol.stdout.waitLine(t, viaBob("for when you are back"))
	})

	t.Run("no carrier online", func(t *testing.T) {
		w := newNATCarry(t, natApart, "alice", "carol")
		bob := w.start(t, "bob", false)
		carol := w.start(t, "carol", true)
		alice := w.start(t, "alice", true)
		alice.send(t, "carol/hello")
		carol.stdout.waitLine(t, viaBob("hello"))
		bob.signal(t, syscall.SIGKILL)

		alice.send(t, "carol/while nobody carries")
		alice.stderr.waitLine(t, "carol is offline: queued")
		if got := carol.stdout.snapshot(); slices.Contains(got, viaBob("while nobody carries")) {
			t.Fatal("delivered with no carrier online")
		}
		// A path appears: bob is back, and both reach him again.
		w.start(t, "bob", false)
		carol.stdout.waitLine(t, viaBob("while nobody carries"))
	})

	t.Run("carrier killed while carrying", func(t *testing.T) {
		n := 200
		if os.Getenv("P2PCHAT_FULL") != "" {
			n = 1000
		}
		w := newNATCarry(t, natApart, "alice", "carol")
		bob := w.start(t, "bob", false)
		carol := w.start(t, "carol", true)
		alice := w.start(t, "alice", true)
		alice.send(t, "carol/cards")
		carol.stdout.waitLine(t, viaBob("cards"))
		carol.send(t, "/quit")
		carol.wait(t)

		var want []string
		var input strings.Builder
		for i := range n {
			text := fmt.Sprintf("message %04d", i)
			want = append(want, viaBob(text))
			fmt.Fprintf(&input, "carol/%s\n", text)
		}
		if _, err := io.WriteString(alice.stdin, input.String()); err != nil {
			t.Fatal(err)
		}
		// Kill bob while he carries them: once /peers says he holds
		// some, as more keep coming.
		waitPoll(t, "bob to carry some of alice's messages", func() bool {
			bob.send(t, "/peers")
			return slices.ContainsFunc(bob.stderr.snapshot(), func(l string) bool { return strings.Contains(l, "message(s) for carol") })
		})
		bob.signal(t, syscall.SIGKILL)
		w.start(t, "bob", false)
		carol = w.start(t, "carol", true)
		// Each wait is for more of them: under load they keep coming,
		// slowly, and what the test holds to is that they all come.
		var got []string
		for seen := -1; seen < n; {
			before := seen
			got = carol.stdout.wait(t, fmt.Sprintf("more than %d of %d messages from alice", before, n), func(lines []string) bool {
				seen = countPrefix(lines, messageFrom("alice", "message "))
				return seen > before
			})
		}
		got = slices.DeleteFunc(slices.Clone(got), func(l string) bool { return !strings.HasPrefix(l, messageFrom("alice", "message ")) })
		if !slices.Equal(got, want) {
			t.Errorf("carol showed %d messages, want %d once each in order; first differences:\n%s", len(got), n, firstDiff(got, want))
		}
	})

	t.Run("behind NAT, learnt by itself", func(t *testing.T) {
		// Home addresses in the table, as a group that does not know who
		// is behind what: each finds out by asking bob to dial it back.
		w := newNATCarry(t, natApart)
		bob := w.start(t, "bob", false)
		carol := w.start(t, "carol", false)
		alice := w.start(t, "alice", false)
		for _, p := range []*nsInstance{alice, carol} {
			waitPoll(t, p.name+" to learn it cannot be reached from outside", func() bool {
				b, _ := os.ReadFile(p.logPath())
				return bytes.Contains(b, []byte(`msg="not reachable from outside (behind a NAT?)`))
			})
		}
		// Their new cards say so, and bob shows it.
		waitPoll(t, "bob's /peers to say alice is behind a NAT", func() bool {
			bob.send(t, "/peers")
			return slices.ContainsFunc(bob.stderr.snapshot(), func(l string) bool {
				return strings.HasPrefix(l, "alice ") && strings.Contains(l, "behind a NAT")
			})
		})
		// Bob writes to alice first: down the connection she keeps open.
		bob.send(t, "alice/hello behind your NAT")
		alice.stdout.waitLine(t, messageFrom("bob", "hello behind your NAT"))
		alice.send(t, "carol/and through bob to you")
		carol.stdout.waitLine(t, viaBob("and through bob to you"))
	})

	t.Run("direct on one LAN", func(t *testing.T) {
		w := newNATCarry(t, natLAN)
		bob := w.start(t, "bob", false)
		carol := w.start(t, "carol", false)
		alice := w.start(t, "alice", false)
		alice.send(t, "carol/next door")
		carol.stdout.waitLine(t, messageFrom("alice", "next door"))
		alice.send(t, "bob/hi bob")
		bob.stdout.waitLine(t, messageFrom("alice", "hi bob"))
		bob.send(t, "/peers")
		bob.stderr.waitLine(t, "REACHED")
		if slices.ContainsFunc(bob.stderr.snapshot(), func(l string) bool { return strings.Contains(l, "carrying") }) {
			t.Errorf("bob carries for alice or carol on one LAN:\n%s", quoteLines(bob.stderr.snapshot()))
		}
		if slices.ContainsFunc(alice.stderr.snapshot(), func(l string) bool { return strings.Contains(l, " carries ") }) {
			t.Errorf("alice handed her message to a carrier on one LAN:\n%s", quoteLines(alice.stderr.snapshot()))
		}
		if got := carol.stdout.snapshot(); slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, "(via ") }) {
			t.Errorf("carol shows a carried message on one LAN:\n%s", quoteLines(got))
		}
	})
}

func countLines(lines []string, want string) int {
	n := 0
	for _, l := range lines {
		if l == want {
			n++
		}
	}
	return n
}

func countPrefix(lines []string, prefix string) int {
	n := 0
	for _, l := range lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func firstDiff(got, want []string) string {
	for i := range max(len(got), len(want)) {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			return fmt.Sprintf("line %d: got %q, want %q", i, g, w)
		}
	}
	return "none"
}

// assertNoPlaintext fails if a file under dir holds text.
func assertNoPlaintext(t *testing.T, dir, text string) {
	t.Helper()
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(text)) {
			t.Errorf("%s holds the text of a message it carried", path)
		}
		return nil
	})
}
