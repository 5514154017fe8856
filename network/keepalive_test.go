package network

import (
	"testing"
	"time"
)

// TestNoAddressKeepsAConnectionOpen: alice has no address ("-" in every
// table, her own included). She opens a connection to bob at start, with
// nothing to send, and what bob writes to her comes down it; it is not
// closed when idle.
func TestNoAddressKeepsAConnectionOpen(t *testing.T) {
	checkNoLeaks(t)
	base := testTable(t, "alice", "bob")
	rows := base.Friends()
	rows[0].Host = NoHost
	tab, err := NewTable(rows)
	if err != nil {
		t.Fatal(err)
	}
	bob := startNode(t, tab, "bob")
	const idle = 200 * time.Millisecond
	alice := startNode(t, tab, "alice", func(c *Config) { c.IdleTimeout = idle })
	up := waitFor(t, bob, func(e ConnUp) bool { return e.Friend == "alice" })
	if !up.Inbound {
		t.Errorf("bob saw %+v, want alice's connection to him", up)
	}
	seq := send(t, bob, "alice", "down your connection")
	if got := waitFor[MessageReceived](t, alice, nil); got.Text != "down your connection" || got.Seq != seq {
		t.Errorf("alice got %+v", got)
	}
	waitFor(t, bob, func(e MessageDelivered) bool { return e.Seq == seq })
	// Idle for twice alice's idle timeout, the connection is still open.
	kept := alice.outboxes["bob"].live.Load()
	waitCondition(t, "the kept connection to idle past the idle timeout", func() bool {
		return kept == nil || kept.idleFor() > 2*idle
	})
	if alice.outboxes["bob"].live.Load() != kept || kept == nil {
		t.Error("alice's kept connection was closed when idle")
	}
	assertNo[ConnDown](t, alice)
}
