package main

// End-to-end tests of groups with the real binary: @group/message and
// @all/message with three and four instances, a member offline who gets
// its copy when it starts, and bad group lines in the table.

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
)

// addGroups appends group lines ("@trip alice bob") to c's peers file.
func (c *chat) addGroups(t *testing.T, lines ...string) {
	t.Helper()
	f, err := os.OpenFile(c.peersFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, l := range lines {
		if _, err := fmt.Fprintln(f, l); err != nil {
			t.Fatal(err)
		}
	}
}

func groupMessage(from, group, text string) string {
	return "Message from " + from + " to @" + group + ": " + text
}

// count returns how many of lines are exactly l.
func count(lines []string, l string) int {
	return countFunc(lines, func(s string) bool { return s == l })
}

// Three friends: a message to @trip or @all reaches each of the others
// once, nobody else, and the sender sees one line when all have it.
func TestGroupOfThree(t *testing.T) {
	names := []string{"user_1", "user_2", "user_3"}
	c := newChat(t, names...)
	c.addGroups(t, "@trip user_1 user_2 user_3", "@pair user_2 user_3")
	procs := make(map[string]*process)
	for _, n := range names {
		procs[n] = c.startAs(t, n)
	}
	procs["user_1"].send(t, "@trip/see you at the station")
	procs["user_1"].stderr.waitLine(t, `Delivered to @trip (user_2, user_3): "see you at the station"`)
	procs["user_2"].send(t, "@all/I am in")
	procs["user_2"].stderr.waitLine(t, `Delivered to @all (user_1, user_3): "I am in"`)
	procs["user_3"].send(t, "@pair/just us two")
	procs["user_3"].stderr.waitLine(t, `Delivered to @pair (user_2): "just us two"`)
	procs["user_1"].send(t, "@pair/let me in")
	procs["user_1"].stderr.waitLine(t, "not sent to @pair: you are not a member of @pair")

	want := map[string][]string{
		"user_1": {groupMessage("user_2", "all", "I am in")},
		"user_2": {groupMessage("user_1", "trip", "see you at the station"), groupMessage("user_3", "pair", "just us two")},
		"user_3": {groupMessage("user_1", "trip", "see you at the station"), groupMessage("user_2", "all", "I am in")},
	}
	for _, n := range names {
		procs[n].stdout.waitCount(t, "messages", len(want[n]), isMessage)
	}
	for _, n := range names {
		if code := procs[n].signal(t, syscall.SIGTERM); code != 0 {
			t.Errorf("%s exited with status %d, want 0", n, code)
		}
	}
	for _, n := range names {
		got := procs[n].stdout.snapshot()
		slices.Sort(got)
		slices.Sort(want[n])
		if !slices.Equal(got, want[n]) {
			t.Errorf("%s's stdout:\n%s\nwant exactly:\n%s", n, quoteLines(got), quoteLines(want[n]))
		}
	}
}

// Four friends, one of them offline: the sender hears at once who has the
// message and who waits; the member who was away gets it, once, when it
// starts, and the sender hears of that too; /history shows the group, and
// /history @trip the group's messages.
func TestGroupOfFourOneOffline(t *testing.T) {
	names := []string{"alice", "bob", "carol", "dave"}
	c := newChat(t, names...)
	c.addGroups(t, "@trip alice bob carol dave")
	procs := make(map[string]*process)
	for _, n := range names[:3] {
		procs[n] = c.startAs(t, n)
	}
	alice := procs["alice"]
	alice.send(t, "@trip/meet at 8")
	alice.stderr.waitLine(t, `@trip: delivered to 2 of 3 (bob, carol); queued for dave (offline): "meet at 8"`)
	alice.send(t, "@all/bring water")
	alice.stderr.waitLine(t, `@all: delivered to 2 of 3 (bob, carol); queued for dave (offline): "bring water"`)
	for _, n := range []string{"bob", "carol"} {
		procs[n].stdout.waitLine(t, groupMessage("alice", "trip", "meet at 8"))
		procs[n].stdout.waitLine(t, groupMessage("alice", "all", "bring water"))
	}

	dave := c.startAs(t, "dave")
	dave.stdout.waitLine(t, groupMessage("alice", "trip", "meet at 8"))
	dave.stdout.waitLine(t, groupMessage("alice", "all", "bring water"))
	alice.stderr.waitLine(t, `Delivered to dave (@trip): "meet at 8"`)
	alice.stderr.waitLine(t, `Delivered to dave (@all): "bring water"`)
	// A message after them: once dave has it, anything sent twice would
	// have come before it.
	alice.send(t, "dave/after the group")
	dave.stdout.waitLine(t, messageFrom("alice", "after the group"))
	dave.send(t, "@trip/on my way")
	for _, n := range []string{"alice", "bob", "carol"} {
		procs[n].stdout.waitLine(t, groupMessage("dave", "trip", "on my way"))
	}
	dave.stderr.waitLine(t, `Delivered to @trip (alice, bob, carol): "on my way"`)

	alice.send(t, "/history dave")
	alice.stderr.waitLine(t, "you → dave (@trip): meet at 8  [delivered]")
	alice.stderr.waitLine(t, "dave → you (@trip): on my way")
	alice.send(t, "/history @trip")
	alice.stderr.waitLine(t, "you → @trip: meet at 8  [delivered]")
	alice.stderr.waitLine(t, "dave → @trip: on my way")

	procs["dave"] = dave
	for _, n := range names {
		if code := procs[n].signal(t, syscall.SIGTERM); code != 0 {
			t.Errorf("%s exited with status %d, want 0", n, code)
		}
	}
	out := dave.stdout.snapshot()
	for _, l := range []string{groupMessage("alice", "trip", "meet at 8"), groupMessage("alice", "all", "bring water")} {
		if n := count(out, l); n != 1 {
			t.Errorf("dave shows %q %d times, want once:\n%s", l, n, quoteLines(out))
		}
	}
	for _, n := range []string{"bob", "carol"} {
		got := procs[n].stdout.snapshot()
		want := []string{groupMessage("alice", "trip", "meet at 8"), groupMessage("alice", "all", "bring water"), groupMessage("dave", "trip", "on my way")}
		if !slices.Equal(got, want) {
			t.Errorf("%s's stdout:\n%s\nwant exactly:\n%s", n, quoteLines(got), quoteLines(want))
		}
	}
}

// A bad group line is refused with FILE:LINE and exit status 2.
func TestBadGroupLines(t *testing.T) {
	const friends = "alice 127.0.0.1 50100\nbob 127.0.0.1 50101\n"
	for _, tc := range []struct {
		name, lines, want string
	}{
		{"unknown member", "@trip alice zed\n", `:3: unknown member "zed" in @trip`},
		{"duplicate group", "@trip alice\n@trip bob\n", ":4: duplicate group @trip (first on line 3)"},
		{"named like a friend", "@bob alice\n", ":3: group @bob has the name of a friend (line 2)"},
		{"@all redefined", "@all alice\n", ":3: @all is built in"},
		{"empty group", "@trip\n", ":3: empty group @trip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			peers := writeFile(t, "peers", friends+tc.lines)
			p := start(t, "alice", []string{"--peers", peers, "--data-dir", t.TempDir(), "alice"})
			_, _, stderr := p.result(t, 2)
			if len(stderr) != 1 || !strings.Contains(stderr[0], peers+tc.want) {
				t.Errorf("stderr:\n%s\nwant one line containing %q", quoteLines(stderr), peers+tc.want)
			}
		})
	}
}
