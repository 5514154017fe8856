package network

import (
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// receiveTexts waits for n messages at node and returns their texts.
func receiveTexts(t *testing.T, node *Node, n int) []string {
	t.Helper()
	var got []string
	for range n {
		got = append(got, waitFor[MessageReceived](t, node, nil).Text)
	}
	return got
}

func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s %d", prefix, i))
	}
	return out
}

func TestQueuedWhileOfflineDeliveredInOrderOnce(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	alice := startNode(t, tab, "alice")
	want := numbered("queued", 1, 5)
	for i, text := range want {
		send(t, alice, "bob", text)
		q := waitFor[MessageQueued](t, alice, nil)
		if q.Waiting != i+1 || q.Text != text {
			t.Fatalf("queued %+v, want %q with %d waiting", q, text, i+1)
		}
	}
	if st := alice.Status()[0]; st.Pending != 5 || !st.Offline {
		t.Errorf("status while bob is away: %+v", st)
	}

	bob := startNode(t, tab, "bob")
	if got := receiveTexts(t, bob, 5); !slices.Equal(got, want) {
		t.Errorf("bob received %q, want %q", got, want)
	}
	for i := range want {
		d := waitFor[MessageDelivered](t, alice, nil)
		if d.Seq != uint64(i+1) || !d.WasQueued {
			t.Errorf("delivery %d: %+v", i, d)
		}
	}
	// Nothing more arrives: the queue is empty and stays so.
	id := send(t, alice, "bob", "after the queue")
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == id })
	if m := waitFor[MessageReceived](t, bob, nil); m.Text != "after the queue" {
		t.Errorf("bob then received %q", m.Text)
	}
	if st := alice.Status()[0]; st.Pending != 0 || st.Offline {
		t.Errorf("status after delivery: %+v", st)
	}
}

func TestQueueSurvivesSenderRestart(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	aliceID, aliceDB := newIdentity(t, "alice"), openStore(t)
	alice := startNode(t, tab, "alice", withIdentity(aliceID), withStore(aliceDB))
	want := numbered("before restart", 1, 3)
	for _, text := range want {
		send(t, alice, "bob", text)
		waitFor[MessageQueued](t, alice, nil)
	}
	alice.Close()

	alice = startNode(t, tab, "alice", withIdentity(aliceID), withStore(aliceDB))
	if st := alice.Status()[0]; st.Pending != 3 {
		t.Fatalf("after restart, %d waiting, want 3", st.Pending)
	}
	bob := startNode(t, tab, "bob")
	id := send(t, alice, "bob", "after restart")
	want = append(want, "after restart")
	if got := receiveTexts(t, bob, 4); !slices.Equal(got, want) {
		t.Errorf("bob received %q, want %q", got, want)
	}
	if id != 4 {
		t.Errorf("the new message got id %d, want 4: sequence numbers must continue across restarts", id)
	}
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == id })
}

func TestReceiverRestartShowsNothingTwice(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	bobID, bobDB := newIdentity(t, "bob"), openStore(t)
	alice := startNode(t, tab, "alice")
	bob := startNode(t, tab, "bob", withIdentity(bobID), withStore(bobDB))
	for _, text := range numbered("first life", 1, 3) {
		id := send(t, alice, "bob", text)
		waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == id })
	}
	receiveTexts(t, bob, 3)
	bob.Close()
	waitFor(t, alice, func(e ConnDown) bool { return !e.Inbound })

	// Messages sent while bob is down wait, then arrive once.
	for _, text := range numbered("while down", 1, 2) {
		send(t, alice, "bob", text)
	}
	bob = startNode(t, tab, "bob", withIdentity(bobID), withStore(bobDB))
	id := send(t, alice, "bob", "second life")
	want := append(numbered("while down", 1, 2), "second life")
	if got := receiveTexts(t, bob, 3); !slices.Equal(got, want) {
		t.Errorf("bob received %q, want %q", got, want)
	}
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == id })
	assertNo[MessageReceived](t, bob)

	h, err := bob.History("alice", 100)
	if err != nil || len(h) != 6 {
		t.Fatalf("bob's history: %d records, %v; want 6", len(h), err)
	}
}

// ackDropper is a TCP proxy to a friend. Once drop is set, whatever the
// friend sends back on the first connection is lost: its acks never
// arrive. Later connections pass both ways.
type ackDropper struct {
	ln    net.Listener
	to    string
	drop  atomic.Bool
	conns atomic.Int32
	wg    sync.WaitGroup
}

func startAckDropper(t *testing.T, to string) *ackDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &ackDropper{ln: ln, to: to}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.wg.Wait() })
	return p
}

func (p *ackDropper) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		first := p.conns.Add(1) == 1
		s, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		p.wg.Add(2)
		go func() { defer p.wg.Done(); io.Copy(s, c); s.Close() }()
		go func() {
			defer p.wg.Done()
			defer c.Close()
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if !(first && p.drop.Load()) {
					c.Write(buf[:n])
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

func TestLostAckIsResentAndShownOnce(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	bobRow := mustLookup(t, tab, "bob")
	proxy := startAckDropper(t, bobRow.Addr())
	port := proxy.ln.Addr().(*net.TCPAddr).Port
	// alice reaches bob through the proxy.
	viaProxy, err := NewTable([]Friend{mustLookup(t, tab, "alice"), {Name: "bob", Host: "127.0.0.1", Port: port}})
	if err != nil {
		t.Fatal(err)
	}
	bob := startNode(t, tab, "bob")
	alice := startNode(t, viaProxy, "alice", func(c *Config) { c.AckTimeout = 500 * time.Millisecond })

	warm := send(t, alice, "bob", "warm up")
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == warm })
	waitFor[MessageReceived](t, bob, nil)
	proxy.drop.Store(true)

	lost := send(t, alice, "bob", "ack lost")
	m := waitFor[MessageReceived](t, bob, nil)
	if m.Text != "ack lost" {
		t.Fatalf("bob got %q", m.Text)
	}
	// alice gives up on the silent connection and sends again on a new one;
	// bob acknowledges without showing it again.
	down := waitFor(t, alice, func(e ConnDown) bool { return !e.Inbound })
	if !errors.Is(down.Err, ErrNoAck) {
		t.Errorf("first connection dropped for %v, want no ack", down.Err)
	}
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == lost })
	if n := proxy.conns.Load(); n != 2 {
		t.Errorf("%d connections through the proxy, want 2", n)
	}
	id := send(t, alice, "bob", "second")
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == id })
	if m := waitFor[MessageReceived](t, bob, nil); m.Text != "second" {
		t.Errorf("after the resend bob showed %q, want the next message", m.Text)
	}
	h, _ := bob.History("alice", 10)
	if len(h) != 3 {
		t.Errorf("bob recorded %d messages, want 3: %+v", len(h), h)
	}
}

// A message recorded but never marked shown (the process died between the
// two) is handed on again at the next start, and only then.
func TestUnshownMessageIsShownAfterRestart(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	bobID, bobDB := newIdentity(t, "bob"), openStore(t)
	alice := startNode(t, tab, "alice")
	bob := startNode(t, tab, "bob", withIdentity(bobID), withStore(bobDB))
	id := send(t, alice, "bob", "shown before the crash?")
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == id })
	// Read bob's events as a shell that dies before showing would: no
	// MarkShown.
	timeout := time.After(waitTimeout)
	for received := false; !received; {
		select {
		case ev := <-bob.Events():
			_, received = ev.(MessageReceived)
		case <-timeout:
			t.Fatal("bob received nothing")
		}
	}
	bob.Close()

	bob = startNode(t, tab, "bob", withIdentity(bobID), withStore(bobDB))
	m := waitFor[MessageReceived](t, bob, nil) // marks it shown
	if m.Text != "shown before the crash?" || m.Seq != id {
		t.Fatalf("after restart bob handed on %+v", m)
	}
	bob.Close()

	bob = startNode(t, tab, "bob", withIdentity(bobID), withStore(bobDB))
	id = send(t, alice, "bob", "next")
	if m := waitFor[MessageReceived](t, bob, nil); m.Text != "next" {
		t.Errorf("a message shown and marked came again: %q", m.Text)
	}
}
