package main

// End-to-end test of the upgrade from p2pchat 0.1's store, on the fixture
// in testdata/upgrade-v1, and the helpers that read /history and /peers.

import (
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite" // to find a page in use, for TestCheckFlag
)

// historyEntry is one line of /history, without its time.
type historyEntry struct {
	Out   bool   // "you → FRIEND", rather than "FRIEND → you"
	Text  string // as shown
	State string // "delivered" or "waiting" for a sent message; "" for a received one
}

func (e historyEntry) String() string {
	if e.Out {
		return fmt.Sprintf("out %q [%s]", e.Text, e.State)
	}
	return fmt.Sprintf("in %q", e.Text)
}

// historyRow matches a line of /history: the time (today's clock, or a
// date and a clock), who wrote to whom, the text and, for a sent message,
// its state.
var historyRow = regexp.MustCompile(`^(?:\d\d:\d\d:\d\d|\d{4}-\d\d-\d\d \d\d:\d\d)  (?:you → (\S+)|(\S+) → you): (.*?)(?:  \[(delivered|waiting)\])?$`)

// historyOf runs /history FRIEND on p and returns what it lists.
func historyOf(t *testing.T, p *process, friend string) []historyEntry {
	t.Helper()
	var out []historyEntry
	for _, l := range shellAnswer(t, p, "/history "+friend+" 100") {
		m := historyRow.FindStringSubmatch(l)
		if m == nil || (m[1] != friend && m[2] != friend) {
			continue // a notice that came meanwhile
		}
		out = append(out, historyEntry{Out: m[1] != "", Text: m[3], State: m[4]})
	}
	return out
}

// checkHistory compares p's /history with friend to want.
func checkHistory(t *testing.T, p *process, friend string, want []historyEntry) {
	t.Helper()
	if got := historyOf(t, p, friend); !slices.Equal(got, want) {
		t.Errorf("%s's /history %s:\n%s\nwant:\n%s", p.label, friend, entryLines(got), entryLines(want))
	}
}

func entryLines(es []historyEntry) string {
	var lines []string
	for _, e := range es {
		lines = append(lines, e.String())
	}
	return quoteLines(lines)
}

// waitWaiting types /peers into p until it shows n messages waiting for
// friend: acknowledgements come after the friend has shown a message, and
// only /peers tells they have come.
func waitWaiting(t *testing.T, p *process, friend string, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		got := waitingColumn(t, p)[friend]
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s's /peers still says %d messages wait for %s after %v, want %d", p.label, got, friend, waitTimeout, n)
		}
		time.Sleep(10 * time.Millisecond) // polling a command's answer: nothing to wait on
	}
}

// copyDataDir copies the directory src to dst as p2pchat keeps a data
// directory: directories 0700, files 0600.
func copyDataDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			if err := os.MkdirAll(to, 0o700); err != nil {
				return err
			}
			return os.Chmod(to, 0o700)
		}
		in, err := os.Open(path)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(to, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		if err := out.Chmod(0o600); err != nil {
			out.Close()
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatalf("copying %s to %s: %v", src, dst, err)
	}
}

// fileNames returns the names in dir, sorted.
func fileNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// v1Fixture is testdata/upgrade-v1: data directories written by p2pchat
// 0.1, and what they hold (expected.json; see its README).
const v1Fixture = "testdata/upgrade-v1"

// v1Expected is the part of expected.json these tests use.
type v1Expected map[string]struct {
	Queued  map[string][]string `json:"queued"`
	History map[string][]struct {
		Out       bool   `json:"out"`
		Text      string `json:"text"`
		Delivered bool   `json:"delivered"`
	} `json:"history"`
}

func loadV1Expected(t *testing.T) v1Expected {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(v1Fixture, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e v1Expected
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("expected.json: %v", err)
	}
	return e
}

// oldHistory is what /history should list of name's 0.1 history with
// friend, with the messages in queued as delivered if delivered is set.
func (e v1Expected) oldHistory(name, friend string, delivered bool) []historyEntry {
	var out []historyEntry
	for _, m := range e[name].History[friend] {
		h := historyEntry{Out: m.Out, Text: m.Text}
		if m.Out {
			h.State = "waiting"
			if m.Delivered || delivered {
				h.State = "delivered"
			}
		}
		out = append(out, h)
	}
	return out
}

// moved counts the messages of name's 0.1 store, with every friend.
func (e v1Expected) moved(name string) int {
	n := 0
	for _, h := range e[name].History {
		n += len(h)
	}
	return n
}

// TestUpgradeFromV1 runs the new binary on copies of data directories that
// p2pchat 0.1 wrote: it says once how many messages it moved in, sends
// what 0.1 had queued (two messages that were only in its unmerged log)
// once, shows nothing again that 0.1 had shown, keeps the history in its
// order and the queue to a friend who never came; a restart changes none
// of that.
func TestUpgradeFromV1(t *testing.T) {
	want := loadV1Expected(t)
	peers := filepath.Join(v1Fixture, "peers") // fixed ports 24711..24713
	dirs := map[string]string{}
	for _, name := range []string{"alice", "bob"} {
		dirs[name] = filepath.Join(t.TempDir(), name)
		copyDataDir(t, filepath.Join(v1Fixture, name), dirs[name])
	}
	addrs := map[string]string{"alice": "127.0.0.1:24711", "bob": "127.0.0.1:24712"}
	run := func(name string) *process {
		t.Helper()
		p := start(t, name, []string{"--peers", peers, "--data-dir", dirs[name], name})
		p.dataDir = dirs[name]
		p.waitGreeting(t, addrs[name])
		return p
	}
	movedLine := func(name string) string {
		dir := dirs[name]
		return fmt.Sprintf("p2pchat: moved %d messages from p2pchat 0.1's store into %s; the old files are in %s",
			want.moved(name), filepath.Join(dir, "p2pchat.sqlite"), filepath.Join(dir, "old-store"))
	}
	greeting := func(name string) string {
		return greetingLine(name, addrs[name], slices.DeleteFunc([]string{"alice", "bob", "carol"}, func(f string) bool { return f == name })...)
	}
	waitsLine := func(n int, friend string) string {
		return fmt.Sprintf("%d message(s) to %s wait from before; they go out as soon as %s can be reached.", n, friend, friend)
	}
	checkStartup := func(p *process, want ...string) {
		t.Helper()
		// Nothing else can come before the answer to /peers: bob and
		// carol have nothing to send, and nothing waiting is new.
		if got := linesBefore(t, p.stderr, "FRIEND "); !slices.Equal(got, want) {
			t.Errorf("%s's stderr at start:\n%s\nwant exactly:\n%s", p.label, quoteLines(got), quoteLines(want))
		}
	}

	// alice first, while bob is not running: 0.1's queue is there.
	alice := run("alice")
	if got := waitingColumn(t, alice); got["bob"] != 2 || got["carol"] != 3 {
		t.Errorf("alice's /peers says %v waiting, want bob 2 and carol 3", got)
	}
	checkStartup(alice, movedLine("alice"), greeting("alice"), waitsLine(2, "bob"), waitsLine(3, "carol"))
	checkHistory(t, alice, "bob", want.oldHistory("alice", "bob", false))
	checkHistory(t, alice, "carol", want.oldHistory("alice", "carol", false))

	bob := run("bob")
	if got := waitingColumn(t, bob); got["alice"] != 0 || got["carol"] != 0 {
		t.Errorf("bob's /peers says %v waiting, want none", got)
	}
	checkStartup(bob, movedLine("bob"), greeting("bob"))
	checkHistory(t, bob, "alice", want.oldHistory("bob", "alice", false))

	// bob writes: his connection makes alice try him at once.
	bob.send(t, "alice/hello from the new bob")
	alice.stdout.waitLine(t, messageFrom("bob", "hello from the new bob"))
	queued := want["alice"].Queued["bob"]
	for _, text := range queued {
		bob.stdout.waitLine(t, messageFrom("alice", text))
		alice.stderr.waitLine(t, fmt.Sprintf("Delivered to bob: %q", text))
	}
	// Anything else of 0.1's, sent again or shown again, would have come
	// before these on the same connections, or at the start.
	alice.send(t, "bob/marker")
	bob.stdout.waitLine(t, messageFrom("alice", "marker"))
	wantBob := []string{messageFrom("alice", queued[0]), messageFrom("alice", queued[1]), messageFrom("alice", "marker")}
	if got := withoutWritten(bob.stdout.snapshot()); !slices.Equal(got, wantBob) {
		t.Errorf("bob's stdout:\n%s\nwant exactly:\n%s", quoteLines(got), quoteLines(wantBob))
	}
	if got := alice.stdout.snapshot(); !slices.Equal(got, []string{messageFrom("bob", "hello from the new bob")}) {
		t.Errorf("alice's stdout, want only bob's new message:\n%s", quoteLines(got))
	}
	waitWaiting(t, alice, "bob", 0) // bob's ack of the marker is in
	if code := alice.signal(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("alice exited with status %d after SIGTERM, want 0", code)
	}
	for _, name := range []string{"alice", "bob"} {
		oldFiles := fileNames(t, filepath.Join(v1Fixture, name))
		oldFiles = slices.DeleteFunc(oldFiles, func(f string) bool { return !strings.HasPrefix(f, "p2pchat.db") })
		if got := fileNames(t, filepath.Join(dirs[name], "old-store")); !slices.Equal(got, oldFiles) {
			t.Errorf("%s's old-store holds %v, want %v", name, got, oldFiles)
		}
		if got := fileNames(t, dirs[name]); slices.ContainsFunc(got, func(f string) bool { return strings.HasPrefix(f, "p2pchat.db") }) {
			t.Errorf("%s's data dir still holds files of 0.1's store: %v", name, got)
		}
	}

	// A restart: nothing moved, shown or sent again.
	alice = run("alice")
	if got := waitingColumn(t, alice); got["bob"] != 0 || got["carol"] != 3 {
		t.Errorf("restarted alice's /peers says %v waiting, want bob 0 and carol 3", got)
	}
	checkStartup(alice, greeting("alice"), waitsLine(3, "carol"))
	bob.send(t, "alice/again from bob")
	alice.stdout.waitLine(t, messageFrom("bob", "again from bob"))
	checkHistory(t, alice, "bob", append(want.oldHistory("alice", "bob", true),
		historyEntry{Text: "hello from the new bob"},
		historyEntry{Out: true, Text: "marker", State: "delivered"},
		historyEntry{Text: "again from bob"}))
	alice.send(t, "bob/marker after the restart")
	bob.stdout.waitLine(t, messageFrom("alice", "marker after the restart"))
	wantBob = append(wantBob, messageFrom("alice", "marker after the restart"))
	if got := withoutWritten(bob.stdout.snapshot()); !slices.Equal(got, wantBob) {
		t.Errorf("bob's stdout after alice's restart:\n%s\nwant exactly:\n%s", quoteLines(got), quoteLines(wantBob))
	}
	if got := alice.stdout.snapshot(); !slices.Equal(got, []string{messageFrom("bob", "again from bob")}) {
		t.Errorf("restarted alice's stdout, want only bob's new message:\n%s", quoteLines(got))
	}
	for _, p := range []*process{alice, bob} {
		if code := p.signal(t, syscall.SIGTERM); code != 0 {
			t.Errorf("%s exited with status %d after SIGTERM, want 0", p.label, code)
		}
		for _, l := range p.stderr.snapshot() {
			if strings.Contains(l, "WARNING") || strings.Contains(l, "cannot") {
				t.Errorf("%s said %q", p.label, l)
			}
		}
	}
}

// withoutWritten drops the " (written TIME)" that a message written long
// before it arrives ends with, as the fixture's queued ones were.
func withoutWritten(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		if j := strings.LastIndex(l, " (written "); j >= 0 && strings.HasSuffix(l, ")") {
			l = l[:j]
		}
		out[i] = l
	}
	return out
}
