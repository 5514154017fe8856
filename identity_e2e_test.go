package main

// End-to-end tests of identities: --id, /whoami, the IDs the table pins
// and trust on first use, with real instances run by the harness
// (harness_test.go).

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
)

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
// is refused loudly until /forget and then /accept of the new identity.
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
	// The new identity is not pinned by itself: user_1 is shown it, and
	// accepts it.
	u1.send(t, "user_2/welcome back")
	waiting := u1.stderr.waitLine(t, "/accept user_2 "+newID)
	if !strings.Contains(waiting, "forgotten") {
		t.Errorf("warning after /forget %q does not say the identity was forgotten", waiting)
	}
	if got := u2.stdout.snapshot(); len(got) > 0 {
		t.Errorf("the new user_2 received a message before /accept:\n%s", quoteLines(got))
	}
	u1.send(t, "/accept user_2 "+newID)
	u1.stderr.waitLine(t, "Pinned identity "+newID+" for user_2.")
	u2.stdout.waitLine(t, messageFrom("user_1", "welcome back"))
	if got := firstContacts(u1.stderr.snapshot(), "user_2"); len(got) != 1 {
		t.Errorf("user_1 announced first contacts with user_2 %v, want only the first", got)
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
