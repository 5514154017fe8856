package network

import (
	"errors"
	"testing"

	"p2pchat/network/wire"
)

// TestMessagesGoDownTheFriendsConnection: alice cannot reach bob (her table
// gives an address where nobody listens, as for a friend behind a NAT), but
// bob reaches her. What alice has queued for bob goes down bob's connection
// to her, and bob's acks come back up it: a connection carries frames both
// ways, whichever end dialled.
func TestMessagesGoDownTheFriendsConnection(t *testing.T) {
	checkNoLeaks(t)
	bobsTable := testTable(t, "alice", "bob")
	alicesRows := bobsTable.Friends()
	for i := range alicesRows {
		if alicesRows[i].Name == "bob" {
			alicesRows[i].Port = freePort(t) // nobody listens there
		}
	}
	alicesTable, err := NewTable(alicesRows)
	if err != nil {
		t.Fatal(err)
	}
	alice := startNode(t, alicesTable, "alice")
	bob := startNode(t, bobsTable, "bob")

	queued := send(t, alice, "bob", "waiting for you")
	waitFor(t, alice, func(e MessageQueued) bool { return e.Seq == queued })

	send(t, bob, "alice", "here I am")
	got := waitFor(t, bob, func(e MessageReceived) bool { return e.From == "alice" })
	if got.Text != "waiting for you" || got.Seq != queued {
		t.Errorf("bob got %+v, want alice's queued message %d", got, queued)
	}
	// Alice's events come in either order: bob's message, and the
	// delivery of hers.
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == queued })

	// And a message alice writes now takes the same way at once.
	now := send(t, alice, "bob", "and this one")
	waitFor(t, bob, func(e MessageReceived) bool { return e.Seq == now && e.Text == "and this one" })
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == now })
}

// TestAckForNothingIsAViolation: a friend's connection that acknowledges
// a message never sent on it is closed as malformed, and the acks it sent
// are not kept.
func TestAckForNothingIsAViolation(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	alice := startNode(t, tab, "alice")
	id := newIdentity(t, "bob")
	c := tlsClient(t, alice, id)
	var acks []wire.Frame
	for i := range 10 {
		acks = append(acks, wire.Ack{Seq: uint64(i + 1)})
	}
	// The write may fail part way: alice closes at the first ack.
	c.Write(frames(append([]wire.Frame{wire.Hello{Version: wire.Version, Name: "bob"}}, acks...)...))
	expectClosed(t, c, waitTimeout)
	down := waitFor(t, alice, func(e ConnDown) bool { return e.Friend == "bob" && e.Inbound })
	if !errors.Is(down.Err, wire.ErrBadFrame) {
		t.Errorf("connection ended with %v, want a protocol violation", down.Err)
	}
}
