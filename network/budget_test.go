package network

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"p2pchat/network/wire"
)

// What fits a budget of 1000 bytes in an hour, with 600 used half an hour
// ago.
func TestBudgetFits(t *testing.T) {
	now := time.Now()
	cases := []struct {
		name          string
		used          int64 // half an hour ago
		at            time.Time
		pending, size int64
		want          bool
	}{
		{"room", 600, now, 0, 400, true},
		{"no room", 600, now, 0, 401, false},
		{"no room after what is pending", 600, now, 300, 200, false},
		{"an empty window takes the first message whatever its size", 0, now, 0, 5000, true},
		{"but not a second one past the limit", 0, now, 800, 300, false},
		{"room again once the window has passed", 600, now.Add(31 * time.Minute), 0, 1000, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := newBudget(1000, time.Hour)
			b.loaded = true
			if tc.used > 0 {
				b.add(now.Add(-30*time.Minute), tc.used)
			}
			if got := b.fits(tc.at, tc.pending, tc.size); got != tc.want {
				t.Errorf("fits(%d pending, %d more): %v, want %v", tc.pending, tc.size, got, tc.want)
			}
		})
	}
}

// budgetMessage is a message of 250 bytes: the limit below holds 10.
func budgetMessage(i int) string {
	s := fmt.Sprintf("%03d ", i)
	return s + strings.Repeat("x", 250-len(s))
}

// withBudget limits what one friend may send to n messages of
// budgetMessage's size within window.
func withBudget(n int, window time.Duration) func(*Config) {
	return func(c *Config) { c.ReceiveLimit, c.ReceiveWindow = int64(250*n), window }
}

// received is one MessageReceived and when it came.
type received struct {
	MessageReceived
	at time.Time
}

// collect reads n's events until want messages came, or the deadline,
// marking them shown as the shell does, and returns them and the
// ReceivingPaused events.
func collect(t *testing.T, n *Node, want int, deadline time.Duration) ([]received, []ReceivingPaused) {
	t.Helper()
	var msgs []received
	var paused []ReceivingPaused
	timeout := time.NewTimer(deadline)
	defer timeout.Stop()
	for len(msgs) < want {
		select {
		case ev := <-n.Events():
			switch ev := ev.(type) {
			case MessageReceived:
				n.MarkShown(ev)
				msgs = append(msgs, received{ev, time.Now()})
			case ReceivingPaused:
				paused = append(paused, ev)
			}
		case <-timeout.C:
			t.Fatalf("%s: %d messages within %v, want %d", n.Name(), len(msgs), deadline, want)
		}
	}
	return msgs, paused
}

// A friend who sends more than the limit within the window is paused:
// what fits is shown, the person is told once, the rest waits with the
// sender, unacknowledged, and comes, once each and in order, when the
// window has room again.
func TestFriendPastTheLimitIsPausedUntilTheWindowHasRoom(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	const window = 3 * time.Second
	alice := startNode(t, tab, "alice")
	bob := startNode(t, tab, "bob", withBudget(10, window))
	const total = 15
	began := time.Now()
	for i := range total {
		send(t, alice, "bob", budgetMessage(i))
	}
	msgs, paused := collect(t, bob, total, window+waitTimeout)
	for i, m := range msgs {
		if m.Text != budgetMessage(i) {
			t.Fatalf("message %d is %.10q, want %.10q", i, m.Text, budgetMessage(i))
		}
	}
	// The 11th waited for the first ten to leave the window. Measured from
	// before the first was sent: the test sees each message some time
	// after it was recorded, the first one as much as the 11th.
	if early := msgs[10].at.Sub(began); early < window-window/budgetPeriods {
		t.Errorf("the 11th message came %v after the first was sent, within the window of %v", early, window)
	}
	if len(paused) != 1 || paused[0].From != "alice" || paused[0].Limit != 2500 || paused[0].Until.Before(began.Add(window-window/budgetPeriods)) {
		t.Errorf("paused events %+v, want one for alice until the window has room", paused)
	}
	for range total {
		waitFor[MessageDelivered](t, alice, nil)
	}
}

// The count is kept in the store: a restart does not give the friend a new
// budget.
func TestTheLimitSurvivesARestart(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	const window = 4 * time.Second
	alice := startNode(t, tab, "alice")
	db := openStore(t)
	bobID := newIdentity(t, "bob")
	bob := startNode(t, tab, "bob", withBudget(10, window), withStore(db), withIdentity(bobID))
	for i := range 10 {
		send(t, alice, "bob", budgetMessage(i))
	}
	first, _ := collect(t, bob, 10, waitTimeout)
	bob.Close()

	bob = startNode(t, tab, "bob", withBudget(10, window), withStore(db), withIdentity(bobID))
	send(t, alice, "bob", budgetMessage(10))
	msgs, paused := collect(t, bob, 1, window+waitTimeout)
	if len(paused) != 1 {
		t.Errorf("after the restart: paused %+v, want once", paused)
	}
	if early := msgs[0].at.Sub(first[0].at); early < window-window/budgetPeriods {
		t.Errorf("after the restart, the 11th message came %v after the first, within the window of %v", early, window)
	}
}

// A connection paused by the budget reads nothing, yet /forget (or the cap
// on a friend's connections) still ends it at once.
func TestPausedConnectionStillCloses(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	bob := startNode(t, tab, "bob", func(c *Config) { c.ReceiveLimit, c.ReceiveWindow = 1, time.Hour })
	c := tlsClient(t, bob, newIdentity(t, "alice"))
	// Far more than the receiver takes in while paused, so that its
	// reader waits too.
	var out []wire.Frame
	out = append(out, wire.Hello{Version: wire.Version, Name: "alice"})
	for i := range 3 * maxReceiveBatch {
		out = append(out, wire.Message{Stream: testStream, Seq: uint64(i + 1), Text: "x"})
	}
	wrote := make(chan error, 1)
	go func() { _, err := c.Write(frames(out...)); wrote <- err }()
	waitFor[MessageReceived](t, bob, nil)
	waitFor[ReceivingPaused](t, bob, nil)
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	// All of it written, and nothing read for a while: the reader waits.
	deadline := time.Now().Add(waitTimeout)
	for !readerWaits(bob, "alice") {
		if time.Now().After(deadline) {
			t.Fatal("bob's reader never stopped reading alice's connection")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := bob.Forget("alice"); err != nil {
		t.Fatal(err)
	}
	down := waitFor(t, bob, func(e ConnDown) bool { return e.Inbound })
	if !errors.Is(down.Err, ErrForgotten) {
		t.Errorf("closed with %v, want ErrForgotten", down.Err)
	}
}

// readerWaits reports whether n's inbound connections from friend have all
// read nothing for 200 ms.
func readerWaits(n *Node, friend string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for c := range n.inbound[friend] {
		if c.link.idleFor() < 200*time.Millisecond {
			return false
		}
	}
	return len(n.inbound[friend]) > 0
}
