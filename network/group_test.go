package network

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"p2pchat/network/wire"
)

// groupTable builds a table of names on free loopback ports, with groups.
func groupTable(t *testing.T, names []string, groups ...Group) *Table {
	t.Helper()
	tab, err := NewTable(testTable(t, names...).Friends(), groups...)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// receiveGroup waits for a message at n and checks its sender, group and
// text.
func receiveGroup(t *testing.T, n *Node, from, group, text string) MessageReceived {
	t.Helper()
	m := waitFor[MessageReceived](t, n, nil)
	if m.From != from || m.Group != group || m.Text != text {
		t.Errorf("%s got %+v, want %q from %s to @%s", n.Name(), m, text, from, group)
	}
	return m
}

// expectNoMessage fails if n hands on a message within a short while.
func expectNoMessage(t *testing.T, n *Node, within time.Duration) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		select {
		case ev := <-n.Events():
			if m, ok := ev.(MessageReceived); ok {
				t.Errorf("%s got %+v, want nothing", n.Name(), m)
			}
		case <-deadline.C:
			return
		}
	}
}

func TestGroupMessageReachesEachMemberOnce(t *testing.T) {
	checkNoLeaks(t)
	names := []string{"alice", "bob", "carol", "dave"}
	tab := groupTable(t, names, Group{"trip", []string{"alice", "bob", "carol"}}, Group{"pair", []string{"bob", "dave"}}, Group{"back", []string{"carol", "alice", "bob"}})
	nodes := map[string]*Node{}
	for _, name := range names {
		nodes[name] = startNode(t, tab, name)
	}
	alice := nodes["alice"]
	solo := send(t, alice, "bob", "before the group")
	receiveGroup(t, nodes["bob"], "alice", "", "before the group")

	to, err := alice.SendGroup("trip", "to the trip")
	if err != nil || !slices.Equal(to, []string{"bob", "carol"}) {
		t.Fatalf("SendGroup(trip) = %v, %v, want bob and carol", to, err)
	}
	b := receiveGroup(t, nodes["bob"], "alice", "trip", "to the trip")
	receiveGroup(t, nodes["carol"], "alice", "trip", "to the trip")
	if b.Seq != solo+1 {
		t.Errorf("bob's copy is number %d, want %d: each copy is numbered with the member's other messages", b.Seq, solo+1)
	}
	r := waitFor[GroupReport](t, alice, nil)
	if r.Group != "trip" || r.Text != "to the trip" || !slices.Equal(r.Delivered, []string{"bob", "carol"}) || r.Queued != nil || r.Failed != nil {
		t.Errorf("report %+v, want delivered to bob and carol", r)
	}

	// Members come in the group's order, not the table's.
	to, err = alice.SendGroup("back", "backwards")
	if err != nil || !slices.Equal(to, []string{"carol", "bob"}) {
		t.Fatalf("SendGroup(back) = %v, %v, want carol, bob", to, err)
	}
	receiveGroup(t, nodes["bob"], "alice", "back", "backwards")
	receiveGroup(t, nodes["carol"], "alice", "back", "backwards")
	if r := waitFor[GroupReport](t, alice, nil); !slices.Equal(r.Delivered, []string{"carol", "bob"}) {
		t.Errorf("report %+v, want delivered to carol, bob", r)
	}
	if h, err := alice.GroupHistory("back", 1); err != nil || len(h) != 1 || !slices.Equal(h[0].To, []string{"carol", "bob"}) {
		t.Errorf("history of @back: %+v, %v", h, err)
	}

	to, err = nodes["dave"].SendGroup(AllGroup, "to everyone")
	if err != nil || !slices.Equal(to, []string{"alice", "bob", "carol"}) {
		t.Fatalf("SendGroup(all) = %v, %v", to, err)
	}
	for _, n := range []string{"alice", "bob", "carol"} {
		receiveGroup(t, nodes[n], "dave", AllGroup, "to everyone")
	}
	if r := waitFor[GroupReport](t, nodes["dave"], nil); !slices.Equal(r.Delivered, []string{"alice", "bob", "carol"}) {
		t.Errorf("dave's report %+v", r)
	}
	// dave heard of it once, in the report, and not per copy.
	expectNoMessage(t, nodes["dave"], 200*time.Millisecond)
	expectNoMessage(t, nodes["dave"], 0)

	for _, tc := range []struct {
		group string
		want  error
	}{{"pair", ErrNotMember}, {"nosuch", ErrUnknownGroup}, {"bob", ErrUnknownGroup}} {
		if _, err := alice.SendGroup(tc.group, "x"); !errors.Is(err, tc.want) {
			t.Errorf("SendGroup(%s): %v, want %v", tc.group, err, tc.want)
		}
	}
	if _, err := alice.SendGroup("trip", "   "); !errors.Is(err, ErrEmptyMessage) {
		t.Errorf("SendGroup of spaces: %v", err)
	}
	// Nothing of the refused sends went anywhere.
	expectNoMessage(t, nodes["dave"], 200*time.Millisecond)
	expectNoMessage(t, nodes["bob"], 0)
}

// A member who is offline gets its copy, once, when it comes, even after
// the sender restarted; the sender hears of the others at once, and of it
// when it arrives.
func TestGroupCopyWaitsForAnOfflineMember(t *testing.T) {
	checkNoLeaks(t)
	names := []string{"alice", "bob", "carol"}
	tab := groupTable(t, names, Group{"trip", names})
	aliceID, aliceDB := newIdentity(t, "alice"), openStore(t)
	alice := startNode(t, tab, "alice", withIdentity(aliceID), withStore(aliceDB))
	bob := startNode(t, tab, "bob")

	if _, err := alice.SendGroup("trip", "first"); err != nil {
		t.Fatal(err)
	}
	receiveGroup(t, bob, "alice", "trip", "first")
	r := waitFor[GroupReport](t, alice, nil)
	if !slices.Equal(r.Delivered, []string{"bob"}) || !slices.Equal(r.Queued, []string{"carol"}) || r.Why["carol"] == nil {
		t.Errorf("report %+v, want delivered to bob, queued for carol with why", r)
	}
	if _, err := alice.SendGroup("trip", "second"); err != nil {
		t.Fatal(err)
	}
	receiveGroup(t, bob, "alice", "trip", "second")
	waitFor(t, alice, func(r GroupReport) bool { return r.Text == "second" && slices.Equal(r.Queued, []string{"carol"}) })

	carolID, carolDB := newIdentity(t, "carol"), openStore(t)
	carol := startNode(t, tab, "carol", withIdentity(carolID), withStore(carolDB))
	receiveGroup(t, carol, "alice", "trip", "first")
	for _, text := range []string{"first", "second"} {
		d := waitFor[MessageDelivered](t, alice, nil)
		if d.To != "carol" || d.Group != "trip" || d.Text != text || !d.WasQueued {
			t.Errorf("delivered %+v, want carol's copy of %q for @trip", d, text)
		}
	}
	receiveGroup(t, carol, "alice", "trip", "second")
	carol.Close()

	// Queued across a restart, a copy keeps its group.
	if _, err := alice.SendGroup("trip", "third"); err != nil {
		t.Fatal(err)
	}
	receiveGroup(t, bob, "alice", "trip", "third")
	waitFor(t, alice, func(r GroupReport) bool { return r.Text == "third" && slices.Equal(r.Queued, []string{"carol"}) })
	alice.Close()
	alice = startNode(t, tab, "alice", withIdentity(aliceID), withStore(aliceDB))
	carol = startNode(t, tab, "carol", withIdentity(carolID), withStore(carolDB))
	receiveGroup(t, carol, "alice", "trip", "third")
	d := waitFor[MessageDelivered](t, alice, nil)
	if d.To != "carol" || d.Group != "trip" || d.Text != "third" || !d.WasQueued {
		t.Errorf("after the restart, delivered %+v", d)
	}
	// The delivered mark is written lazily: wait for it.
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(10 * time.Millisecond) {
		h, err := alice.History("carol", 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(h) == 3 && !slices.ContainsFunc(h, func(e HistoryEntry) bool { return e.Group != "trip" || !e.Delivered }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history with carol %+v, want three delivered copies for @trip", h)
		}
	}
}

// A message whose group tag names a group that is not in the table, or
// one the sender is not in, is acknowledged and not shown, and reported
// once per tag; the messages around it are shown as usual.
func TestGroupTagRefused(t *testing.T) {
	checkNoLeaks(t)
	names := []string{"alice", "bob", "carol"}
	tab := groupTable(t, names, Group{"trip", []string{"alice", "bob"}}, Group{"others", []string{"bob", "carol"}})
	aliceID := newIdentity(t, "alice")
	bob := startNode(t, tab, "bob")
	c := tlsClient(t, bob, aliceID)
	c.SetDeadline(time.Now().Add(waitTimeout))
	msgs := []wire.Message{
		{Stream: testStream, Seq: 1, Text: "plain"},
		{Stream: testStream, Seq: 2, Group: "nosuch", Text: "unknown group"},
		{Stream: testStream, Seq: 3, Group: "others", Text: "not alice's group"},
		{Stream: testStream, Seq: 4, Group: "nosuch", Text: "unknown group again"},
		{Stream: testStream, Seq: 5, Group: "trip", Text: "alice's group"},
		{Stream: testStream, Seq: 6, Group: AllGroup, Text: "everyone"},
	}
	fs := []wire.Frame{wire.Hello{Version: wire.Version, Name: "alice"}}
	for _, m := range msgs {
		m.Sent = time.Now()
		fs = append(fs, m)
	}
	if _, err := c.Write(frames(fs...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	buf := make([]byte, wire.MaxFrameSize)
	if f, err := wire.ReadFrame(br, buf); err != nil {
		t.Fatal(err)
	} else if _, ok := f.(wire.Welcome); !ok {
		t.Fatalf("got %+v, want a welcome", f)
	}
	for _, m := range msgs {
		f, err := wire.ReadFrame(br, buf)
		for err == nil && (f.Type() == wire.TypeCard || f.Type() == wire.TypeProbe) {
			f, err = wire.ReadFrame(br, buf) // alice's card and probe, before or among the acks
		}
		if err != nil {
			t.Fatalf("waiting for the ack of %d: %v", m.Seq, err)
		}
		if a, ok := f.(wire.Ack); !ok || a.Seq != m.Seq {
			t.Fatalf("got %+v, want the ack of %d", f, m.Seq)
		}
	}
	var shown []string
	refused := map[string]error{}
	deadline := time.NewTimer(waitTimeout)
	defer deadline.Stop()
	for len(shown) < 3 || len(refused) < 2 {
		select {
		case ev := <-bob.Events():
			switch e := ev.(type) {
			case MessageReceived:
				shown = append(shown, e.Group+":"+e.Text)
			case MessageRefused:
				if _, dup := refused[e.Group]; dup || e.From != "alice" {
					t.Errorf("refused %+v again", e)
				}
				refused[e.Group] = e.Err
			}
		case <-deadline.C:
			t.Fatalf("shown %q, refused %v, by the deadline", shown, refused)
		}
	}
	if want := []string{":plain", "trip:alice's group", "all:everyone"}; !reflect.DeepEqual(shown, want) {
		t.Errorf("shown %q, want %q", shown, want)
	}
	if !errors.Is(refused["nosuch"], ErrUnknownGroup) || !errors.Is(refused["others"], ErrNotMember) {
		t.Errorf("refused %v", refused)
	}
	// The same tag again is not reported again, and what follows is shown.
	more := []wire.Frame{
		wire.Message{Stream: testStream, Seq: 7, Low: 6, Group: "nosuch", Text: "and again", Sent: time.Now()},
		wire.Message{Stream: testStream, Seq: 8, Low: 6, Text: "last", Sent: time.Now()},
	}
	if _, err := c.Write(frames(more...)); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case ev := <-bob.Events():
			switch e := ev.(type) {
			case MessageRefused:
				t.Errorf("refused %+v a second time", e)
			case MessageReceived:
				if e.Text != "last" {
					t.Errorf("shown %+v, want the last message", e)
				}
				return
			}
		case <-deadline.C:
			t.Fatal("the message after the refused one was not shown")
		}
	}
}

// On a full disk, a group message whose copies cannot be recorded gets one
// report that names every member it failed for, and nothing goes out.
func TestGroupOnAFullDisk(t *testing.T) {
	checkNoLeaks(t)
	names := []string{"alice", "bob", "carol"}
	tab := groupTable(t, names, Group{"trip", names})
	disk := smallDisk(t, 2<<20)
	db := openStoreIn(t, disk)
	alice := startNode(t, tab, "alice", withStore(db))
	bob, carol := startNode(t, tab, "bob"), startNode(t, tab, "carol")
	filler := fill(t, disk)
	// Until a write fails, a message goes out while it is recorded.
	for i := 0; ; i++ {
		if _, err := alice.SendGroup("trip", fmt.Sprintf("filling %d", i)); err != nil {
			t.Fatal(err)
		}
		r := waitFor[GroupReport](t, alice, nil)
		if len(r.Failed) > 0 {
			break
		}
	}
	if _, err := alice.SendGroup("trip", "while full"); err != nil {
		t.Fatal(err)
	}
	r := waitFor[GroupReport](t, alice, nil)
	if r.Text != "while full" || !slices.Equal(r.Failed, []string{"bob", "carol"}) || r.Delivered != nil || r.Queued != nil {
		t.Fatalf("report %+v, want failed for bob and carol", r)
	}
	for _, m := range r.Failed {
		if !errors.Is(r.Why[m], ErrNoSpace) {
			t.Errorf("failed for %s because of %v, want no space", m, r.Why[m])
		}
	}
	// Nothing of it went out, and groups work again once there is space.
	os.Remove(filler)
	if _, err := alice.SendGroup("trip", "after"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, alice, func(r GroupReport) bool {
		return r.Text == "after" && slices.Equal(r.Delivered, []string{"bob", "carol"})
	})
	for _, n := range []*Node{bob, carol} {
		for {
			m := waitFor[MessageReceived](t, n, nil)
			if m.Text == "after" {
				break
			}
			if !strings.HasPrefix(m.Text, "filling") {
				t.Errorf("%s got %q, which was not recorded", n.Name(), m.Text)
			}
		}
	}
}

// A group's history has each message of ours once, with who has it, and
// the members' messages.
func TestGroupHistory(t *testing.T) {
	checkNoLeaks(t)
	names := []string{"alice", "bob", "carol"}
	tab := groupTable(t, names, Group{"trip", names})
	alice, bob := startNode(t, tab, "alice"), startNode(t, tab, "bob")
	if _, err := alice.SendGroup("trip", "first"); err != nil {
		t.Fatal(err)
	}
	receiveGroup(t, bob, "alice", "trip", "first")
	waitFor[GroupReport](t, alice, nil)
	if _, err := bob.SendGroup("trip", "reply"); err != nil {
		t.Fatal(err)
	}
	receiveGroup(t, alice, "bob", "trip", "reply")
	send(t, alice, "bob", "not for the group")
	receiveGroup(t, bob, "alice", "", "not for the group")
	// The delivered mark is written lazily: wait for it.
	var h []GroupEntry
	for deadline := time.Now().Add(waitTimeout); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if h, err = alice.GroupHistory("trip", 10); err != nil {
			t.Fatal(err)
		}
		if len(h) == 2 && len(h[0].Delivered) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("history of @trip %+v, want first delivered to bob", h)
		}
	}
	if h[0].From != "" || h[0].Text != "first" || !slices.Equal(h[0].To, []string{"bob", "carol"}) || !slices.Equal(h[0].Delivered, []string{"bob"}) {
		t.Errorf("first entry %+v, want ours, to bob and carol, delivered to bob", h[0])
	}
	if h[1].From != "bob" || h[1].Text != "reply" {
		t.Errorf("second entry %+v, want bob's reply", h[1])
	}
	if h, _ := alice.GroupHistory("trip", 1); len(h) != 1 || h[0].Text != "reply" {
		t.Errorf("the last one: %+v", h)
	}
	if _, err := alice.GroupHistory("nosuch", 1); !errors.Is(err, ErrUnknownGroup) {
		t.Errorf("history of an unknown group: %v", err)
	}
}
