package shell_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"p2pchat/network"
)

// withGroups adds groups to w's table and to its peers file.
func withGroups(t *testing.T, w world, groups ...network.Group) world {
	t.Helper()
	tab, err := network.NewTable(w.table.Friends(), groups...)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(w.file, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, g := range groups {
		if _, err := fmt.Fprintf(f, "@%s %s\n", g.Name, strings.Join(g.Members, " ")); err != nil {
			t.Fatal(err)
		}
	}
	return world{table: tab, file: w.file}
}

// expectGroupMessage waits for the next message f receives and checks its
// sender, group and text.
func (f friend) expectGroupMessage(t *testing.T, from, group, text string) {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		select {
		case ev := <-f.Events():
			m, ok := ev.(network.MessageReceived)
			if !ok {
				continue
			}
			if m.From != from || m.Group != group || m.Text != text {
				t.Fatalf("%s received %+v, want %q from %s to @%s", f.Name(), m, text, from, group)
			}
			f.MarkShown(m)
			return
		case <-timeout.C:
			t.Fatalf("%s: no message %q from %s within %v", f.Name(), text, from, waitTimeout)
		}
	}
}

// On the terminal, Tab completes a group's name up to the '/', /to takes a
// group and the prompt names it, and the sender sees one line once every
// member has the message.
func TestGroupsOnTheTerminal(t *testing.T) {
	t.Parallel()
	w := withGroups(t, newWorld(t, "alice", "bob", "carol"),
		network.Group{Name: "trip", Members: []string{"alice", "bob", "carol"}},
		network.Group{Name: "team", Members: []string{"alice", "bob"}})
	bob, carol := startFriend(t, w, "bob"), startFriend(t, w, "carol")
	s := startSession(t, w, "alice", options{})

	s.typeKeys("@t\t")
	s.waitPrompt("@t")
	s.typeKeys("r\t")
	s.waitPrompt("@trip/")
	s.typeKeys("hello trip\r")
	bob.expectGroupMessage(t, "alice", "trip", "hello trip")
	carol.expectGroupMessage(t, "alice", "trip", "hello trip")
	s.waitScreen(func(sn snapshot) bool {
		return sn.count(`Delivered to @trip (bob, carol): "hello trip"`) == 1
	}, "one line saying that bob and carol have it")

	s.typeKeys("@a\t")
	s.waitPrompt("@all/")
	s.typeKeys("everyone\r")
	bob.expectGroupMessage(t, "alice", network.AllGroup, "everyone")
	carol.expectGroupMessage(t, "alice", network.AllGroup, "everyone")

	// /history takes a group too, and Tab completes it.
	s.typeKeys("/history @tr\t")
	s.waitPrompt("/history @trip ")
	s.typeKeys("\r")
	s.waitScreen(func(sn snapshot) bool {
		return sn.count("you → @trip: hello trip  [delivered]") == 1
	}, "the history of @trip")

	s.typeKeys("/to @team\r")
	s.waitScreen(func(sn snapshot) bool { return sn.row() == "alice → @team>" }, "the prompt naming @team")
	s.typeKeys("just us\r")
	bob.expectGroupMessage(t, "alice", "team", "just us")
	s.waitScreen(func(sn snapshot) bool {
		return sn.count(`Delivered to @team (bob): "just us"`) == 1
	}, "the delivery to @team")
}
