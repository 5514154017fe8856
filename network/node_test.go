package network

import (
	"bufio"
	"context"
	"crypto/tls"

	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"p2pchat/network/internal/store"
	"p2pchat/network/trust"
	"runtime"
	"strings"
	"testing"
	"time"

	"p2pchat/network/wire"
)

// waitTimeout bounds every wait on a condition in these tests.
const waitTimeout = 10 * time.Second

// testTable builds a table of the given names on free loopback ports
// (freePort: port_test.go).
func testTable(t testing.TB, names ...string) *Table {
	t.Helper()
	var rows []Friend
	for _, n := range names {
		rows = append(rows, Friend{Name: n, Host: "127.0.0.1", Port: freePort(t)})
	}
	tab, err := NewTable(rows)
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// checkNoLeaks fails the test if goroutines started during it are still
// running once its cleanups (registered later, so run earlier) are done.
func checkNoLeaks(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(waitTimeout)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines before the test, %d after:\n%s", before, runtime.NumGoroutine(), buf)
				return
			}
			runtime.Gosched()
			time.Sleep(time.Millisecond)
		}
	})
}

// startNode starts the node called name in tab, closed when the test ends.
func startNode(t *testing.T, tab *Table, name string, tweak ...func(*Config)) *Node {
	t.Helper()
	cfg := Config{
		Name:     name,
		Table:    tab,
		Identity: newIdentity(t, name),
		Store:    &Store{db: openStore(t)},
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name),
	}
	for _, f := range tweak {
		f(&cfg)
	}
	n, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

// openStore opens a fresh store, closed when the test ends.
func openStore(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func withStore(db *store.DB) func(*Config) { return func(c *Config) { c.Store = &Store{db: db} } }

// newIdentity creates a fresh identity for name.
func newIdentity(t testing.TB, name string) *Identity {
	t.Helper()
	id, err := LoadIdentity(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// waitFor reads n's events until one of type E satisfies ok, and returns it.
// Other events are logged and passed over.
func waitFor[E Event](t *testing.T, n *Node, ok func(E) bool) E {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		select {
		case ev, open := <-n.Events():
			if !open {
				var zero E
				t.Fatalf("%s: events closed while waiting for %T", n.Name(), zero)
			}
			if m, is := ev.(MessageReceived); is {
				n.MarkShown(m) // as the shell does once it has shown it
			}
			if e, is := ev.(E); is && (ok == nil || ok(e)) {
				return e
			}
			t.Logf("%s: passing over %T %+v", n.Name(), ev, ev)
		case <-timeout.C:
			var zero E
			t.Fatalf("%s: no %T within %v", n.Name(), zero, waitTimeout)
			return zero
		}
	}
}

func send(t *testing.T, n *Node, to, text string) uint64 {
	t.Helper()
	id, err := n.Send(to, text)
	if err != nil {
		t.Fatalf("%s: Send(%q, %q): %v", n.Name(), to, text, err)
	}
	return id
}

func TestTwoNodesExchangeMessages(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	alice := startNode(t, tab, "alice")
	bob := startNode(t, tab, "bob")

	for _, text := range []string{"hi bob", "tab\there/slash/é/日本", strings.Repeat("ü", MaxMessageRunes)} {
		id := send(t, alice, "bob", text)
		got := waitFor[MessageReceived](t, bob, nil)
		if got.From != "alice" || got.Text != text || got.Seq != id {
			t.Errorf("bob got %+v, want from alice id %d text %q", got, id, text)
		}
		waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == id && e.To == "bob" })
	}
	id := send(t, bob, "alice", "hi alice")
	got := waitFor[MessageReceived](t, alice, nil)
	if got.From != "bob" || got.Text != "hi alice" || got.Seq != id {
		t.Errorf("alice got %+v", got)
	}
}

func TestThreeNodesOnlyTheAddresseeReceives(t *testing.T) {
	checkNoLeaks(t)
	names := []string{"user_1", "user_2", "user_3"}
	tab := testTable(t, names...)
	nodes := map[string]*Node{}
	for _, name := range names {
		nodes[name] = startNode(t, tab, name)
	}
	// Every ordered pair sends one message; each node must then receive
	// exactly the two addressed to it.
	for _, from := range names {
		for _, to := range names {
			if from != to {
				send(t, nodes[from], to, fmt.Sprintf("%s to %s", from, to))
			}
		}
	}
	for _, to := range names {
		seen := map[string]bool{}
		for range 2 {
			m := waitFor[MessageReceived](t, nodes[to], nil)
			want := fmt.Sprintf("%s to %s", m.From, to)
			if m.Text != want || seen[m.From] {
				t.Errorf("%s received %q from %s", to, m.Text, m.From)
			}
			seen[m.From] = true
		}
	}
}

func TestSendRefusesBadInput(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	alice := startNode(t, tab, "alice")
	for _, tc := range []struct {
		to, text string
		want     error
	}{
		{"carol", "hi", ErrUnknownFriend},
		{"alice", "hi", ErrSelf},
		{"bob", "", ErrEmptyMessage},
		{"bob", strings.Repeat("x", MaxMessageRunes+1), ErrMessageTooLong},
		{"bob", strings.Repeat("日", MaxMessageRunes+1), ErrMessageTooLong},
	} {
		if _, err := alice.Send(tc.to, tc.text); !errors.Is(err, tc.want) {
			t.Errorf("Send(%q, %d bytes) = %v, want %v", tc.to, len(tc.text), err, tc.want)
		}
	}
}

func TestIdleConnectionClosesAndNextMessageRedials(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	idle := func(c *Config) { c.IdleTimeout = 200 * time.Millisecond }
	alice := startNode(t, tab, "alice", idle)
	bob := startNode(t, tab, "bob", idle)

	for round := range 3 {
		id := send(t, alice, "bob", fmt.Sprintf("round %d", round))
		waitFor(t, alice, func(e ConnUp) bool { return e.Friend == "bob" && !e.Inbound })
		waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == id })
		if st := alice.Status()[0]; !st.Connected {
			t.Fatalf("round %d: after delivery, alice's status of bob = %+v, want connected", round, st)
		}
		down := waitFor(t, alice, func(e ConnDown) bool { return e.Friend == "bob" && !e.Inbound })
		if !errors.Is(down.Err, ErrIdle) {
			t.Fatalf("round %d: connection closed with %v, want idle", round, down.Err)
		}
		if st := alice.Status()[0]; st.Connected {
			t.Fatalf("round %d: after idle close, status = %+v", round, st)
		}
		// Bob sees the inbound side end as well.
		waitFor(t, bob, func(e ConnDown) bool { return e.Friend == "alice" && e.Inbound })
	}
}

func TestUnreachableFriend(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob") // bob is never started
	alice := startNode(t, tab, "alice")
	id := send(t, alice, "bob", "anyone there?")
	f := waitFor[MessageQueued](t, alice, nil)
	bob, _ := tab.Lookup("bob")
	want := fmt.Sprintf("cannot reach bob at %s: connection refused", bob.Addr())
	if f.Seq != id || f.Err.Error() != want || f.Waiting != 1 {
		t.Errorf("got %v (id %d, %d waiting), want %q (id %d, 1 waiting)", f.Err, f.Seq, f.Waiting, want, id)
	}
	var re *ReachError
	if !errors.As(f.Err, &re) {
		t.Errorf("error %T is not a *ReachError", f.Err)
	}
}

func TestWrongInstanceOnFriendsPort(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob", "carol")
	// alice's table puts bob where carol listens.
	carolRow, _ := tab.Lookup("carol")
	aliceTab, err := NewTable([]Friend{mustLookup(t, tab, "alice"), {Name: "bob", Host: "127.0.0.1", Port: carolRow.Port}, carolRow})
	if err != nil {
		t.Fatal(err)
	}
	alice := startNode(t, aliceTab, "alice")
	startNode(t, tab, "carol")
	send(t, alice, "bob", "hi bob")
	f := waitFor[MessageQueued](t, alice, nil)
	if !strings.Contains(f.Err.Error(), `its certificate names "carol", not bob`) {
		t.Errorf("got %q", f.Err)
	}
}

func mustLookup(t *testing.T, tab *Table, name string) Friend {
	t.Helper()
	f, ok := tab.Lookup(name)
	if !ok {
		t.Fatalf("%s not in table", name)
	}
	return f
}

func TestAddressInUse(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	startNode(t, tab, "alice")
	_, err := Start(context.Background(), Config{Name: "alice", Table: tab, Identity: newIdentity(t, "alice"), Store: &Store{db: openStore(t)}})
	if err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("second Start: %v, want address already in use", err)
	}
}

// rawClient connects to n over plain TCP.
func rawClient(t *testing.T, n *Node) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", n.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tlsClient connects to n over TLS with id's certificate. From the client's
// side the handshake succeeds even if n goes on to reject the certificate.
func tlsClient(t *testing.T, n *Node, id *Identity) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", n.Addr().String(), &tls.Config{
		Certificates:       []tls.Certificate{id.Cert},
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// testStream is a stream ID for hand-made frames.
var testStream = wire.StreamID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

func frames(fs ...wire.Frame) []byte {
	var b []byte
	for _, f := range fs {
		b = wire.AppendFrame(b, f)
	}
	return b
}

// expectClosed reads from c until the server closes it, and fails the test
// if that takes longer than within. It returns what was read.
func expectClosed(t *testing.T, c net.Conn, within time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(within))
	got, err := io.ReadAll(c)
	if isTimeout(err) {
		t.Fatalf("connection not closed by the server within %v", within)
	}
	return got
}

func TestHostileConnectionsAreCutOffWhileFriendsGetThrough(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob", "carol")
	// Short enough to keep the silent cases quick, long enough for a TLS
	// handshake under the race detector on a loaded machine.
	short := func(c *Config) { c.HandshakeTimeout = 1500 * time.Millisecond }
	aliceID := newIdentity(t, "alice")
	alice := startNode(t, tab, "alice", short, func(c *Config) { c.Identity = aliceID })
	bob := startNode(t, tab, "bob", short)
	// A first message pins alice's identity at bob.
	send(t, alice, "bob", "first")
	waitFor[MessageReceived](t, bob, nil)

	var oversized [5]byte
	oversized[0] = 0x7f // announces ~2 GB
	oversized[4] = wire.TypeMessage
	helloAlice := frames(wire.Hello{Version: wire.Version, Name: "alice"})

	cases := []struct {
		name     string
		tls      *Identity // nil: plain TCP
		send     []byte
		wantErr  string // in the ConnRefused event
		wantName string
	}{
		{"plaintext hello", nil, helloAlice, "TLS handshake failed: it does not speak TLS", ""},
		{"http", nil, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "TLS handshake failed", ""},
		{"random bytes", nil, []byte{0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5}, "TLS handshake failed", ""},
		{"silent", nil, nil, "no TLS handshake within", ""},
		{"half a TLS record", nil, []byte{0x16, 0x03, 0x01, 0x00, 0x40, 1}, "no TLS handshake within", ""},
		{"stranger's certificate", newIdentity(t, "mallory"), helloAlice, `names "mallory", who is not in the table`, ""},
		{"impostor with alice's name", newIdentity(t, "alice"), helloAlice, "alice presented identity", "alice"},
		{"hello names someone else", aliceID, frames(wire.Hello{Version: wire.Version, Name: "carol"}), `its certificate names "alice", not carol`, "carol"},
		{"silent after TLS", aliceID, nil, "no hello within", ""},
		{"oversized hello", aliceID, oversized[:], "frame too large", ""},
		{"bad magic", aliceID, frames(wire.Refuse{Reason: "p2pc"}), "expected a hello", ""},
		{"truncated hello", aliceID, []byte{0, 0, 0, 3, wire.TypeHello, 'p', '2'}, "not a p2pchat hello", ""},
		{"claims to be the server", aliceID, frames(wire.Hello{Version: wire.Version, Name: "bob"}), "which is this instance", "bob"},
		{"future version", aliceID, frames(wire.Hello{Version: 9, Name: "alice"}), "protocol version 9 is not spoken here", "alice"},
		{"message before hello", aliceID, frames(wire.Message{Stream: testStream, Seq: 1, Text: "x"}), "expected a hello", ""},
		{"garbage after welcome", aliceID, append(helloAlice, 0, 0, 0, 1, 99), "unknown frame type 99", "alice"},
		{"oversized after welcome", aliceID, append(helloAlice, oversized[:]...), "frame too large", "alice"},
		{"too long message", aliceID, append(helloAlice, frames(wire.Message{Stream: testStream, Seq: 1, Text: strings.Repeat("x", MaxMessageRunes+1)})...), "message too long", "alice"},
		{"empty message", aliceID, append(helloAlice, frames(wire.Message{Stream: testStream, Seq: 1})...), "empty message", "alice"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var c net.Conn
			if tc.tls == nil {
				c = rawClient(t, bob)
			} else {
				c = tlsClient(t, bob, tc.tls)
			}
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c, 5*time.Second)
			ev := waitFor[ConnRefused](t, bob, nil)
			if !strings.Contains(ev.Err.Error(), tc.wantErr) || ev.Name != tc.wantName {
				t.Errorf("refused with name %q, err %q; want name %q, err containing %q", ev.Name, ev.Err, tc.wantName, tc.wantErr)
			}
			if strings.Contains(tc.name, "after welcome") || strings.Contains(tc.name, "message") && tc.name != "message before hello" {
				return // alice's own identity misbehaved: nothing more to check here
			}
			// The good friend is still served.
			id := send(t, alice, "bob", "still there after "+tc.name)
			m := waitFor[MessageReceived](t, bob, nil)
			if m.Text != "still there after "+tc.name {
				t.Errorf("bob received %q", m.Text)
			}
			waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == id })
		})
	}
}

func TestRefusedClientLearnsWhy(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	// bob's table does not know alice.
	bobTab, err := NewTable([]Friend{mustLookup(t, tab, "bob")})
	if err != nil {
		t.Fatal(err)
	}
	alice := startNode(t, tab, "alice")
	bob := startNode(t, bobTab, "bob")
	send(t, alice, "bob", "hi")
	f := waitFor[MessageQueued](t, alice, nil)
	want := "it refused our certificate: we are not in its table, or it has another identity pinned for us"
	if !strings.HasSuffix(f.Err.Error(), want) {
		t.Errorf("got %q, want it to end in %q", f.Err, want)
	}
	waitFor[ConnRefused](t, bob, nil)
}

func TestSilentInboundConnectionIsClosed(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	bob := startNode(t, tab, "bob", func(c *Config) { c.IdleTimeout = 150 * time.Millisecond })
	c := tlsClient(t, bob, newIdentity(t, "alice"))
	c.Write(frames(wire.Hello{Version: wire.Version, Name: "alice"}))
	got := expectClosed(t, c, 5*time.Second)
	if f, err := wire.ReadFrame(bufio.NewReader(strings.NewReader(string(got))), make([]byte, wire.MaxFrameSize)); err != nil || f.(wire.Welcome).Name != "bob" {
		t.Errorf("before closing, bob sent %q (%v), want a welcome", got, err)
	}
	down := waitFor(t, bob, func(e ConnDown) bool { return e.Inbound })
	if !errors.Is(down.Err, ErrIdle) {
		t.Errorf("closed with %v, want idle", down.Err)
	}
}

func TestCloseStopsEverything(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob", "carol")
	alice := startNode(t, tab, "alice")
	bob := startNode(t, tab, "bob")
	// Leave connections in every state: open both ways, a half-done
	// handshake, and a message to a friend who is not running.
	send(t, alice, "bob", "x")
	send(t, bob, "alice", "y")
	waitFor[MessageReceived](t, bob, nil)
	waitFor[MessageReceived](t, alice, nil)
	rawClient(t, bob).Write([]byte{0x16, 0x03})
	send(t, alice, "carol", "z")
	done := make(chan struct{})
	go func() {
		alice.Close()
		bob.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitTimeout):
		t.Fatal("Close did not return")
	}
	if _, err := alice.Send("bob", "after close"); !errors.Is(err, ErrClosed) {
		t.Errorf("Send after Close: %v, want ErrClosed", err)
	}
}

// The hello and the first message go out together right after the TLS
// handshake: the client does not wait for the welcome, so the first
// message is shown two round trips after the dial begins, not three. Here
// bob is a bare TLS server that answers nothing until it has read both.
func TestFirstMessageInOneFlight(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	bobID := newIdentity(t, "bob")
	bobRow := mustLookup(t, tab, "bob")
	ln, err := net.Listen("tcp", bobRow.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	known, _ := LoadKnownPeers("")
	pins := trust.NewPins(bobID, func(string) (ID, bool) { return ID{}, false }, known)
	got := make(chan []wire.Frame, 1)
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer raw.Close()
		conn := tls.Server(raw, pins.ServerConfig(func(name string) bool { return name == "alice" }))
		conn.SetDeadline(time.Now().Add(waitTimeout))
		br := bufio.NewReader(conn)
		var fs []wire.Frame
		for len(fs) < 2 {
			f, err := wire.ReadFrame(br, make([]byte, wire.MaxFrameSize))
			if err != nil {
				break // nothing more came before the deadline
			}
			fs = append(fs, f)
		}
		got <- fs
	}()
	alice := startNode(t, tab, "alice")
	send(t, alice, "bob", "first")
	fs := <-got
	if len(fs) != 2 {
		t.Fatalf("before any answer, bob read %d frames (%+v), want the hello and the message", len(fs), fs)
	}
	if h, ok := fs[0].(wire.Hello); !ok || h.Name != "alice" {
		t.Errorf("first frame %+v, want alice's hello", fs[0])
	}
	if m, ok := fs[1].(wire.Message); !ok || m.Text != "first" {
		t.Errorf("second frame %+v, want the message", fs[1])
	}
}

// A friend still on p2pchat 0.1 (protocol version 1) or 0.2 (version 2)
// refuses our hello with its own words; the person is told to upgrade,
// and the message stays queued.
func TestOldFriendIsToldApart(t *testing.T) {
	for _, tc := range []struct {
		name, refusal string
	}{
		{"version 1", "unsupported protocol version 2 (this peer speaks 1)"},
		// What 0.2 sends: ErrUpgrade's words, then its reason.
		{"version 2", "different p2pchat versions: upgrade: protocol version 3 is not spoken here (bob runs a p2pchat that speaks 2)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeaks(t)
			tab := testTable(t, "alice", "bob")
			bobID := newIdentity(t, "bob")
			ln, err := net.Listen("tcp", mustLookup(t, tab, "bob").Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			known, _ := LoadKnownPeers("")
			pins := trust.NewPins(bobID, func(string) (ID, bool) { return ID{}, false }, known)
			go func() {
				for {
					raw, err := ln.Accept()
					if err != nil {
						return
					}
					conn := tls.Server(raw, pins.ServerConfig(func(name string) bool { return name == "alice" }))
					conn.SetDeadline(time.Now().Add(waitTimeout))
					br, bw := bufio.NewReader(conn), bufio.NewWriter(conn)
					if _, err := wire.ReadFrame(br, make([]byte, wire.MaxFrameSize)); err == nil {
						wire.WriteFrame(bw, wire.Refuse{Reason: tc.refusal})
						bw.Flush()
					}
					conn.Close()
				}
			}()
			alice := startNode(t, tab, "alice")
			seq := send(t, alice, "bob", "are you there?")
			q := waitFor(t, alice, func(e MessageQueued) bool { return e.Seq == seq })
			if !errors.Is(q.Err, ErrUpgrade) || !strings.Contains(q.Err.Error(), "upgrade") {
				t.Errorf("queued because of %v, want a reason that says to upgrade", q.Err)
			}
			if st := alice.Status()[0]; st.Pending != 1 {
				t.Errorf("%d waiting, want the message kept", st.Pending)
			}
		})
	}
}

// An older friend's hello (versions 1 and 2) is refused with a reason that
// says to upgrade, before any message is read.
func TestOldHelloIsRefused(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	bob := startNode(t, tab, "bob")
	aliceID := newIdentity(t, "alice")
	for _, v := range []uint8{1, 2} {
		c := tlsClient(t, bob, aliceID)
		c.SetDeadline(time.Now().Add(waitTimeout))
		old := wire.Message{Stream: testStream, Seq: 1, Sent: time.Now(), Text: "from an old friend"}
		if _, err := c.Write(frames(wire.Hello{Version: v, Name: "alice"}, old)); err != nil {
			t.Fatal(err)
		}
		f, err := wire.ReadFrame(bufio.NewReader(c), make([]byte, wire.MaxFrameSize))
		if r, ok := f.(wire.Refuse); err != nil || !ok || !strings.Contains(r.Reason, "upgrade") || !strings.Contains(r.Reason, fmt.Sprintf("version %d", v)) {
			t.Errorf("hello of version %d answered with %+v, %v; want a refusal that says to upgrade", v, f, err)
		}
		c.Close()
		ev := waitFor[ConnRefused](t, bob, nil)
		if !errors.Is(ev.Err, ErrUpgrade) {
			t.Errorf("version %d: bob reports %v, want ErrUpgrade", v, ev.Err)
		}
	}
}

// While the shell does not read, a flood of refused connections neither
// waits for it nor holds a goroutine each: the refusals are dropped, and
// the next one reported counts them.
func TestRefusalsNeverWaitForTheShell(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice")
	alice := startNode(t, tab, "alice") // nobody reads its events
	addr := alice.Addr().String()
	junk := func() {
		t.Helper()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
		c.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("junk connection not closed: %v", err)
		}
	}
	const flood = eventBuffer + 150
	for range flood {
		junk() // each closed by alice, whoever reads her events
	}
	// The sockets close before the refusals are reported: wait until
	// each one is queued for the shell or counted as dropped.
	deadline := time.Now().Add(waitTimeout)
	for int(alice.refusalsDropped.Load())+len(alice.events) < flood {
		if time.Now().After(deadline) {
			t.Fatalf("after %v, %d refusals queued and %d counted, of %d", waitTimeout, len(alice.events), alice.refusalsDropped.Load(), flood)
		}
		time.Sleep(time.Millisecond) // polling a counter no event reports
	}
	refused := 0
	for range eventBuffer {
		ev := <-alice.Events()
		if r, ok := ev.(ConnRefused); ok {
			refused += 1 + r.Dropped
		}
	}
	junk() // room again: this one is reported, with the count of the rest
	ev := waitFor[ConnRefused](t, alice, nil)
	refused += 1 + ev.Dropped
	if refused != flood+1 {
		t.Errorf("%d refusals accounted for, want %d", refused, flood+1)
	}
}
