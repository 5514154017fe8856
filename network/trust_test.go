package network

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"p2pchat/network/trust"
	"p2pchat/network/wire"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestTLS13WithBothCertificatesChecked(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	aliceID, bobID := newIdentity(t, "alice"), newIdentity(t, "bob")
	alice := startNode(t, tab, "alice", withIdentity(aliceID))
	bob := startNode(t, tab, "bob", withIdentity(bobID))

	send(t, alice, "bob", "over TLS")
	out := waitFor(t, alice, func(e ConnUp) bool { return !e.Inbound })
	in := waitFor(t, bob, func(e ConnUp) bool { return e.Inbound })
	for _, c := range []struct {
		side    string
		ev      ConnUp
		wantID  ID
		wantFor string
	}{
		{"alice's client connection", out, bobID.ID, "bob"},
		{"bob's inbound connection", in, aliceID.ID, "alice"},
	} {
		if c.ev.TLSVersion != tls.VersionTLS13 {
			t.Errorf("%s negotiated TLS version %#x, want 1.3", c.side, c.ev.TLSVersion)
		}
		if c.ev.ID != c.wantID {
			t.Errorf("%s saw %s as %s, want %s", c.side, c.wantFor, c.ev.ID, c.wantID)
		}
	}
	if m := waitFor[MessageReceived](t, bob, nil); m.Text != "over TLS" {
		t.Errorf("bob got %q", m.Text)
	}
	// The ack comes after bob's welcome, which alice pins on.
	waitFor[MessageDelivered](t, alice, nil)
	// Both sides pinned the other on first use.
	for _, c := range []struct {
		n      *Node
		friend string
		want   ID
	}{{alice, "bob", bobID.ID}, {bob, "alice", aliceID.ID}} {
		st := c.n.Status()[0]
		if st.Name != c.friend || st.ID != c.want || st.Pinned != PinnedOnFirstUse {
			t.Errorf("%s's status of %s: %+v, want ID %s pinned on first use", c.n.Name(), c.friend, st, c.want)
		}
	}
}

func withIdentity(id *Identity) func(*Config) { return func(c *Config) { c.Identity = id } }

func withKnownPeers(t *testing.T, path string) func(*Config) {
	t.Helper()
	return func(c *Config) {
		k, err := LoadKnownPeers(path)
		if err != nil {
			t.Fatal(err)
		}
		c.KnownPeers = k
	}
}

// An impostor with a fresh identity and bob's name, on bob's port, is
// refused both when alice dials it and when it dials alice; the real bob
// gets through afterwards.
func TestImpostorRefusedBothWays(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	bobID := newIdentity(t, "bob")
	alice := startNode(t, tab, "alice")
	bob := startNode(t, tab, "bob", withIdentity(bobID))
	first := send(t, alice, "bob", "hi, real bob")
	waitFor[MessageReceived](t, bob, nil)
	// Acknowledged, so that it is not sent again to the new bob below,
	// whose fresh database would take it for new.
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == first })
	bob.Close()
	waitFor(t, alice, func(e ConnDown) bool { return e.Friend == "bob" && !e.Inbound })

	impostorID := newIdentity(t, "bob")
	impostor := startNode(t, tab, "bob", withIdentity(impostorID))

	// Outbound: alice reaches the impostor on bob's port; the message waits.
	secret := send(t, alice, "bob", "secret for bob")
	f := waitFor[MessageQueued](t, alice, nil)
	var idErr *IdentityError
	if !errors.As(f.Err, &idErr) || idErr.Presented != impostorID.ID || idErr.Expected != bobID.ID || idErr.Source != PinnedOnFirstUse {
		t.Fatalf("alice's send to the impostor failed with %v, want an IdentityError naming both IDs", f.Err)
	}
	// Inbound: the impostor writes to alice.
	send(t, impostor, "alice", "I am bob, honest")
	r := waitFor[ConnRefused](t, alice, nil)
	if !errors.As(r.Err, &idErr) || idErr.Name != "bob" || idErr.Presented != impostorID.ID {
		t.Fatalf("alice refused the impostor with %v, want an IdentityError", r.Err)
	}
	if f := waitFor[MessageQueued](t, impostor, nil); !strings.Contains(f.Err.Error(), "refused our certificate") {
		t.Errorf("impostor's send failed with %v", f.Err)
	}
	// Nothing of the impostor reached alice, nothing of alice reached it.
	assertNo[MessageReceived](t, alice)
	assertNo[MessageReceived](t, impostor)
	impostor.Close()

	// The real bob, back on his port, is accepted both ways, and gets what
	// waited for him first.
	bob = startNode(t, tab, "bob", withIdentity(bobID))
	id := send(t, alice, "bob", "welcome back")
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == secret })
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == id })
	for _, want := range []string{"secret for bob", "welcome back"} {
		if m := waitFor[MessageReceived](t, bob, nil); m.Text != want {
			t.Errorf("bob got %q, want %q", m.Text, want)
		}
	}
	send(t, bob, "alice", "thanks")
	if m := waitFor[MessageReceived](t, alice, nil); m.From != "bob" || m.Text != "thanks" {
		t.Errorf("alice got %+v", m)
	}
}

// assertNo fails if n has an event of type E waiting.
func assertNo[E Event](t *testing.T, n *Node) {
	t.Helper()
	for {
		select {
		case ev, open := <-n.Events():
			if !open {
				return
			}
			if _, bad := ev.(E); bad {
				t.Fatalf("%s: unexpected %T %+v", n.Name(), ev, ev)
			}
		default:
			return
		}
	}
}

func TestIDInTheTable(t *testing.T) {
	checkNoLeaks(t)
	base := testTable(t, "alice", "bob")
	aliceID, bobID, otherID := newIdentity(t, "alice"), newIdentity(t, "bob"), newIdentity(t, "bob")
	pinned := func(bob ID, alice ID) *Table {
		a, b := mustLookup(t, base, "alice"), mustLookup(t, base, "bob")
		a.ID, b.ID = alice, bob
		tab, err := NewTable([]Friend{a, b})
		if err != nil {
			t.Fatal(err)
		}
		return tab
	}

	t.Run("right IDs", func(t *testing.T) {
		tab := pinned(bobID.ID, aliceID.ID)
		alice := startNode(t, tab, "alice", withIdentity(aliceID))
		bob := startNode(t, tab, "bob", withIdentity(bobID))
		id := send(t, alice, "bob", "pinned both ways")
		waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == id })
		send(t, bob, "alice", "and back")
		waitFor[MessageReceived](t, alice, nil)
		if st := alice.Status()[0]; st.ID != bobID.ID || st.Pinned != PinnedByTable {
			t.Errorf("alice's status of bob: %+v", st)
		}
		assertNo[IdentityPinned](t, alice)
	})
	t.Run("wrong ID for the server", func(t *testing.T) {
		tab := pinned(otherID.ID, ID{}) // alice expects another bob
		alice := startNode(t, tab, "alice", withIdentity(aliceID))
		startNode(t, tab, "bob", withIdentity(bobID))
		send(t, alice, "bob", "who are you")
		f := waitFor[MessageQueued](t, alice, nil)
		var idErr *IdentityError
		if !errors.As(f.Err, &idErr) || idErr.Source != PinnedByTable || idErr.Expected != otherID.ID || idErr.Presented != bobID.ID {
			t.Errorf("got %v, want an IdentityError from the table pin", f.Err)
		}
	})
	t.Run("wrong ID for the client", func(t *testing.T) {
		tab := pinned(otherID.ID, ID{}) // alice expects another bob
		alice := startNode(t, tab, "alice", withIdentity(aliceID))
		bob := startNode(t, tab, "bob", withIdentity(bobID))
		send(t, bob, "alice", "let me in")
		r := waitFor[ConnRefused](t, alice, nil)
		var idErr *IdentityError
		if !errors.As(r.Err, &idErr) || idErr.Source != PinnedByTable {
			t.Errorf("got %v, want an IdentityError from the table pin", r.Err)
		}
		waitFor[MessageQueued](t, bob, nil)
		if _, err := alice.Forget("bob"); err == nil || !strings.Contains(err.Error(), "pinned by the table") {
			t.Errorf("Forget of a table pin: %v", err)
		}
	})
}

func TestTrustOnFirstUseAndForget(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	known := filepath.Join(t.TempDir(), "known_peers")
	aliceID := newIdentity(t, "alice")
	alice := startNode(t, tab, "alice", withIdentity(aliceID), withKnownPeers(t, known))
	bob := startNode(t, tab, "bob")

	send(t, alice, "bob", "first contact")
	pin := waitFor[IdentityPinned](t, alice, nil)
	if pin.Name != "bob" || pin.ID != bob.ID() {
		t.Fatalf("pinned %+v, want bob as %s", pin, bob.ID())
	}
	data, err := os.ReadFile(known)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "\nbob "+bob.ID().String()+" ") {
		t.Errorf("known_peers does not pin bob:\n%s", data)
	}
	if st, err := os.Stat(known); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("known_peers: %v, mode %v; want 0600", err, st.Mode().Perm())
	}
	bob.Close()

	// alice restarts: the pin is read back from the file.
	alice.Close()
	alice = startNode(t, tab, "alice", withIdentity(aliceID), withKnownPeers(t, known))
	newBob := startNode(t, tab, "bob") // a new identity under bob's name
	send(t, alice, "bob", "are you bob?")
	f := waitFor[MessageQueued](t, alice, nil)
	var idErr *IdentityError
	if !errors.As(f.Err, &idErr) || idErr.Source != PinnedOnFirstUse {
		t.Fatalf("changed identity: %v, want refused as pinned on first use", f.Err)
	}

	// The person forgets the old identity, and accepts the new one.
	dropped, err := alice.Forget("bob")
	if err != nil {
		t.Fatal(err)
	}
	if dropped != pin.ID {
		t.Errorf("Forget dropped %s, want the identity pinned before, %s", dropped, pin.ID)
	}
	if _, err := alice.Forget("bob"); err == nil {
		t.Error("forgetting twice: no error")
	}
	// The new identity is not pinned by itself: it waits for the person.
	id := send(t, alice, "bob", "hello, new bob")
	f = waitFor(t, alice, func(e MessageQueued) bool { return e.Seq == id })
	if !errors.As(f.Err, &idErr) || idErr.Source != Forgotten || idErr.Presented != newBob.ID() {
		t.Fatalf("after forget: %v, want the new identity refused until accepted", f.Err)
	}
	if st := alice.Status()[0]; st.Pinned != Forgotten {
		t.Errorf("after forget, before accept: %+v", st)
	}
	if err := alice.Accept("bob", newBob.ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == id })
	for _, want := range []string{"are you bob?", "hello, new bob"} {
		if m := waitFor[MessageReceived](t, newBob, nil); m.Text != want {
			t.Errorf("new bob got %q, want %q", m.Text, want)
		}
	}
	if st := alice.Status()[0]; st.ID != newBob.ID() || st.Pinned != PinnedOnFirstUse {
		t.Errorf("after forget: %+v", st)
	}
}

// A few hundred junk connections at once (stalled handshakes, plaintext,
// random bytes) are each cut off within the handshake deadline, and a
// friend's messages get through while they are open.
func TestJunkFloodDoesNotStopFriends(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	const deadline = 2 * time.Second
	short := func(c *Config) { c.HandshakeTimeout = deadline }
	alice := startNode(t, tab, "alice", short)
	bob := startNode(t, tab, "bob", short)
	go func() { // bob's shell: drain events so the flood's reports never stall him
		for range bob.Events() {
		}
	}()

	const junk = 300
	payloads := [][]byte{nil, {0x16, 0x03, 0x01, 0x01, 0x00, 0x01}, []byte("GET / HTTP/1.0\r\n\r\n"), {0xde, 0xad, 0xbe, 0xef}}
	conns := make([]net.Conn, 0, junk)
	opened := time.Now()
	for i := range junk {
		c, err := net.Dial("tcp", bob.Addr().String())
		if err != nil {
			t.Fatalf("junk connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		c.Write(payloads[i%len(payloads)])
		conns = append(conns, c)
	}
	// While they are open, alice's messages are delivered.
	for i := range 5 {
		id := send(t, alice, "bob", "through the flood")
		waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == id })
		if i == 0 && time.Since(opened) > deadline {
			t.Logf("warning: the first delivery came after the junk deadline; the flood may not have been open")
		}
	}
	// Every junk connection is closed by bob within the deadline (plus
	// slack for a loaded machine).
	for i, c := range conns {
		c.SetReadDeadline(opened.Add(deadline + 3*time.Second))
		var b [1]byte
		for {
			_, err := c.Read(b[:])
			if err == nil {
				continue // a TLS alert
			}
			if isTimeout(err) {
				t.Fatalf("junk connection %d still open after %v", i, time.Since(opened))
			}
			break
		}
	}
}

func TestIDInTheTableColumn(t *testing.T) {
	id := newIdentity(t, "x").ID
	tab, err := readTable(strings.NewReader("bob 127.0.0.1 1 "+id.String()+"\n"), "t")
	if err != nil || mustLookup(t, tab, "bob").ID != id {
		t.Errorf("table with an ID column: %v", err)
	}
}

// /forget closes every connection made with the forgotten identity at
// once, both ways: it delivers nothing more as that friend.
func TestForgetClosesTheConnections(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	alice := startNode(t, tab, "alice")
	bob := startNode(t, tab, "bob")
	seq := send(t, bob, "alice", "to alice") // bob's connection to alice
	waitFor(t, bob, func(e MessageDelivered) bool { return e.Seq == seq })
	seq = send(t, alice, "bob", "to bob") // alice's connection to bob
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == seq })
	if st := alice.Status()[0]; !st.Connected || st.Inbound != 1 {
		t.Fatalf("before forget: %+v, want both connections open", st)
	}
	if _, err := alice.Forget("bob"); err != nil {
		t.Fatal(err)
	}
	// Both close, in either order.
	var downs []ConnDown
	for len(downs) < 2 {
		downs = append(downs, waitFor(t, alice, func(e ConnDown) bool { return e.Friend == "bob" }))
	}
	if downs[0].Inbound == downs[1].Inbound {
		t.Errorf("closed %+v, want one connection each way", downs)
	}
	for _, d := range downs {
		if !errors.Is(d.Err, ErrForgotten) {
			t.Errorf("connection (inbound %v) closed with %v, want ErrForgotten", d.Inbound, d.Err)
		}
	}
	if st := alice.Status()[0]; st.Inbound != 0 {
		t.Errorf("after forget: %+v, want no inbound connection", st)
	}
}

// One friend's identity cannot hold more than maxInboundPerFriend inbound
// connections: past it, the oldest is closed.
func TestInboundConnectionsPerFriendAreCapped(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	bobID := newIdentity(t, "bob")
	alice := startNode(t, tab, "alice")
	known, _ := LoadKnownPeers("")
	pins := trust.NewPins(bobID, func(string) (ID, bool) { return ID{}, false }, known)
	var conns []*tls.Conn
	for i := range maxInboundPerFriend + 2 {
		c, err := tls.Dial("tcp", mustLookup(t, tab, "alice").Addr(), pins.ClientConfig("alice"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		bw := bufio.NewWriter(c)
		wire.WriteFrame(bw, wire.Hello{Version: wire.Version, Name: "bob"})
		bw.Flush()
		c.SetReadDeadline(time.Now().Add(waitTimeout))
		if f, err := wire.ReadFrame(bufio.NewReader(c), make([]byte, wire.MaxFrameSize)); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		} else if _, ok := f.(wire.Welcome); !ok {
			t.Fatalf("connection %d: %+v, want a welcome", i, f)
		}
		waitFor(t, alice, func(e ConnUp) bool { return e.Inbound })
		conns = append(conns, c)
	}
	for i, c := range conns {
		// Alice's card may come first: read to the end.
		_, err := io.Copy(io.Discard, c)
		closed := !isTimeout(err)
		if want := i < 2; closed != want {
			t.Errorf("connection %d: closed %v (%v), want %v", i, closed, err, want)
		}
		if i == 1 {
			// The rest stay open: do not wait out the deadline on each.
			for _, c := range conns[2:] {
				c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			}
		}
	}
	if st := alice.Status()[0]; st.Inbound != maxInboundPerFriend {
		t.Errorf("alice counts %d inbound connections from bob, want %d", st.Inbound, maxInboundPerFriend)
	}
}

// lineCounter counts the log lines that contain a string.
type lineCounter struct {
	sub string
	n   atomic.Int32
}

func (c *lineCounter) Write(p []byte) (int, error) {
	if strings.Contains(string(p), c.sub) {
		c.n.Add(1)
	}
	return len(p), nil
}

// A friend who connects to us again and again does not make us dial them
// again and again: their connections wake our queue at most once per
// retryOnReach.
func TestReconnectStormDoesNotMakeUsDial(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob") // nobody listens on bob's port: our dials fail at once
	dials := &lineCounter{sub: `msg="cannot reach friend"`}
	alice := startNode(t, tab, "alice", func(c *Config) { c.Logger = slog.New(slog.NewTextHandler(dials, nil)) })
	send(t, alice, "bob", "waiting")
	waitFor[MessageQueued](t, alice, nil)

	bobID := newIdentity(t, "bob")
	known, _ := LoadKnownPeers("")
	pins := trust.NewPins(bobID, func(string) (ID, bool) { return ID{}, false }, known)
	before := dials.n.Load()
	const storm = 40
	for i := range storm {
		c, err := tls.Dial("tcp", mustLookup(t, tab, "alice").Addr(), pins.ClientConfig("alice"))
		if err != nil {
			t.Fatal(err)
		}
		bw := bufio.NewWriter(c)
		wire.WriteFrame(bw, wire.Hello{Version: wire.Version, Name: "bob"})
		bw.Flush()
		c.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := wire.ReadFrame(bufio.NewReader(c), make([]byte, wire.MaxFrameSize)); err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		waitFor(t, alice, func(e ConnUp) bool { return e.Inbound })
		c.Close()
	}
	// Backoff retries and one attempt a second for the storm: a handful,
	// not one per connection.
	if n := dials.n.Load() - before; n >= storm/4 {
		t.Errorf("%d connections from bob made alice dial %d times", storm, n)
	}
}

// After /forget, an impostor that keeps claiming the name is refused every
// time and never pinned, however fast it retries; the forgotten state
// survives a restart; the identity the person accepts gets in.
func TestForgottenNameIsNotPinnedByItself(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	known := filepath.Join(t.TempDir(), "known_peers")
	aliceID := newIdentity(t, "alice")
	alice := startNode(t, tab, "alice", withIdentity(aliceID), withKnownPeers(t, known))
	bob := startNode(t, tab, "bob")
	seq := send(t, bob, "alice", "hi")
	waitFor(t, bob, func(e MessageDelivered) bool { return e.Seq == seq })
	if _, err := alice.Forget("bob"); err != nil {
		t.Fatal(err)
	}
	bob.Close()

	impostor := newIdentity(t, "bob")
	for range 20 {
		c := tlsClient(t, alice, impostor)
		c.Write(frames(wire.Hello{Version: wire.Version, Name: "bob"}))
		expectClosed(t, c, waitTimeout)
		refused := waitFor[ConnRefused](t, alice, nil)
		var idErr *IdentityError
		if !errors.As(refused.Err, &idErr) || idErr.Source != Forgotten || idErr.Presented != impostor.ID {
			t.Fatalf("impostor after forget: %v, want refused as waiting to be accepted", refused.Err)
		}
	}
	if _, src := alice.pins.Pinned("bob"); src != Forgotten {
		t.Fatalf("after 20 tries by an impostor, bob is %v", src)
	}

	alice.Close()
	alice = startNode(t, tab, "alice", withIdentity(aliceID), withKnownPeers(t, known))
	if _, src := alice.pins.Pinned("bob"); src != Forgotten {
		t.Fatalf("after a restart, bob is %v, want still forgotten", src)
	}
	newBob := startNode(t, tab, "bob")
	if err := alice.Accept("bob", newBob.ID()); err != nil {
		t.Fatal(err)
	}
	if err := alice.Accept("bob", impostor.ID); err == nil {
		t.Error("accepting a second identity over the first: no error")
	}
	send(t, newBob, "alice", "it is me")
	if m := waitFor[MessageReceived](t, alice, nil); m.Text != "it is me" {
		t.Errorf("alice got %q", m.Text)
	}
}
