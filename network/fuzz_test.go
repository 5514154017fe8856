package network

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"p2pchat/network/internal/store"

	"p2pchat/network/trust"
	"p2pchat/network/wire"
)

// Modes of FuzzAuthenticatedConn, chosen by the low bit of the first byte.
const (
	fuzzAfterHello = 0 // the rest of the input follows a valid hello
	fuzzNoHello    = 1 // the rest of the input is all the client sends
)

// fuzzWithin bounds each wait on bob in FuzzAuthenticatedConn. Bob answers
// in milliseconds; waiting this long means he is stuck.
const fuzzWithin = 5 * time.Second

// FuzzAuthenticatedConn feeds arbitrary bytes to a running node over a
// connection that has passed TLS with a friend's certificate, so that they
// reach the frame decoder and the hello and receive loops behind it. Before
// the bytes go either a valid hello from alice or nothing (see the modes);
// then the client closes its side.
//
// Bob must not panic; everything he sends must be well-formed frames in the
// order of the protocol (a welcome and acks, or a refuse), starting with a
// welcome after a valid hello; he must close the connection once the client
// has stopped writing; and he must still welcome alice on a new connection
// afterwards.
//
// Bob's own goroutines make coverage vary from run to run, so the fuzzer
// spends long stretches failing to minimize inputs; a short
// -fuzzminimizetime (such as 2s) keeps it fuzzing.
func FuzzAuthenticatedConn(f *testing.F) {
	tab := testTable(f, "alice", "bob", "carol") // carol never runs
	alice := newIdentity(f, "alice")
	db, err := store.Open(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { db.Close() }) // after bob's
	bob, err := Start(context.Background(), Config{
		Name:             "bob",
		Table:            tab,
		Identity:         newIdentity(f, "bob"),
		Store:            &Store{db: db},
		HandshakeTimeout: fuzzWithin,
	})
	if err != nil {
		f.Fatal(err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for range bob.Events() { // so that bob never waits for us
		}
	}()
	f.Cleanup(func() {
		bob.Close()
		<-drained
	})

	helloAlice := frames(wire.Hello{Version: wire.Version, Name: "alice"})
	msg := frames(wire.Message{Stream: testStream, Seq: 7, Sent: time.UnixMilli(1700000000123), Text: "hi bob"})
	seed := func(mode byte, parts ...[]byte) {
		f.Add(append([]byte{mode}, bytes.Join(parts, nil)...))
	}
	sample := []wire.Frame{
		wire.Hello{Version: wire.Version, Name: "alice"},
		wire.Welcome{Version: wire.Version, Name: "bob"},
		wire.Message{Stream: testStream, Seq: 1, Sent: time.UnixMilli(1700000000123), Text: "hi"},
		wire.Ack{Stream: testStream, Seq: 42},
		wire.Refuse{Reason: "no"},
	}
	for _, fr := range sample {
		seed(fuzzAfterHello, frames(fr))
		seed(fuzzNoHello, frames(fr))
	}
	seed(fuzzAfterHello)
	seed(fuzzAfterHello, msg)
	seed(fuzzAfterHello, msg, msg, frames(wire.Message{Stream: testStream, Seq: 8, Text: "é日本\x1b[2J"}))
	seed(fuzzNoHello, helloAlice, msg)
	seed(fuzzAfterHello, msg[:len(msg)-3])                                                                               // truncated
	seed(fuzzAfterHello, []byte{0x7f, 0, 0, 0, wire.TypeMessage})                                                        // announces ~2 GB
	seed(fuzzNoHello, []byte{0, 0, 0x08, 0x01, wire.TypeHello})                                                          // just over the limit
	seed(fuzzAfterHello, []byte{0, 0, 0, 0})                                                                             // empty frame
	seed(fuzzAfterHello, frames(wire.Message{Stream: testStream, Seq: 1, Text: strings.Repeat("日", MaxMessageRunes+1)})) // too long
	seed(fuzzAfterHello, helloAlice)                                                                                     // a second hello
	seed(fuzzNoHello, frames(wire.Hello{Version: wire.Version, Name: "carol"}))                                          // not the certificate's name
	seed(fuzzNoHello, frames(wire.Hello{Version: wire.Version, Name: "bob"}))
	seed(fuzzNoHello, frames(wire.Hello{Version: 1, Name: "alice"}))
	seed(fuzzNoHello, frames(wire.Hello{Version: 2, Name: "alice"}))
	seed(fuzzAfterHello, frames(wire.Message{Stream: testStream, Seq: 1, Group: AllGroup, Text: "to all"}))
	seed(fuzzAfterHello, frames(wire.Message{Stream: testStream, Seq: 1, Group: "trip", Text: "no such group"}, wire.Message{Stream: testStream, Seq: 2, Text: "after it"}))
	seed(fuzzAfterHello, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	seed(fuzzNoHello, []byte{0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5})

	f.Fuzz(func(t *testing.T, in []byte) {
		mode, payload := byte(fuzzAfterHello), in
		if len(in) > 0 {
			mode, payload = in[0]&1, in[1:]
		}
		var out []byte
		if mode == fuzzAfterHello {
			out = append(out, helloAlice...)
		}
		out = append(out, payload...)

		replies, err := exchange(t, bob, alice, out)
		if isTimeout(err) {
			t.Fatalf("bob did not close the connection within %v of the end of the input (%v)", fuzzWithin, err)
		}
		checkReplies(t, mode, replies)

		// Bob still welcomes alice.
		c := dialTLS(t, bob, alice)
		defer c.Close()
		c.SetDeadline(time.Now().Add(fuzzWithin))
		if _, err := c.Write(helloAlice); err != nil {
			t.Fatalf("writing a hello after the input: %v", err)
		}
		fr, err := wire.ReadFrame(bufio.NewReader(c), make([]byte, wire.MaxFrameSize))
		if w, ok := fr.(wire.Welcome); err != nil || !ok || w != (wire.Welcome{Version: wire.Version, Name: "bob"}) {
			t.Fatalf("after the input, bob answered a valid hello with %#v, %v; want a welcome", fr, err)
		}
	})
}

// dialTLS connects to n with id's certificate, completing the handshake.
func dialTLS(t *testing.T, n *Node, id *Identity) *tls.Conn {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: fuzzWithin}, "tcp", n.Addr().String(), &tls.Config{
		Certificates:       []tls.Certificate{id.Cert},
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS13,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// exchange sends out to n over a new connection as id, closes the writing
// side, and returns what n sent until it closed the connection. Reading
// goes on while writing, so that n is never blocked on its answers.
func exchange(t *testing.T, n *Node, id *Identity, out []byte) ([]byte, error) {
	c := dialTLS(t, n, id)
	defer c.Close()
	c.SetDeadline(time.Now().Add(fuzzWithin))
	type result struct {
		b   []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		b, err := io.ReadAll(c)
		got <- result{b, err}
	}()
	// A write fails when n has closed the connection before reading all of
	// out, which is its right.
	if _, err := c.Write(out); err == nil {
		c.CloseWrite()
	}
	r := <-got
	return r.b, r.err
}

// checkReplies checks that b, what the node sent on one connection, is a
// sequence of frames the protocol allows: nothing, a refuse, or a welcome
// followed by acks; after a valid hello (mode fuzzAfterHello), a welcome.
// The last frame may be cut short: a connection closed for a bad frame
// drops the acks not yet flushed, and may have flushed part of one.
func checkReplies(t *testing.T, mode byte, b []byte) {
	t.Helper()
	r := bufio.NewReader(bytes.NewReader(b))
	buf := make([]byte, wire.MaxFrameSize)
	for i := 0; ; i++ {
		fr, err := wire.ReadFrame(r, buf)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if i == 0 && mode == fuzzAfterHello {
				t.Fatalf("bob answered a valid hello with %q", b)
			}
			return
		}
		if err != nil {
			t.Fatalf("frame %d from bob: %v (all he sent: %q)", i, err, b)
		}
		switch fr := fr.(type) {
		case wire.Welcome:
			if i != 0 || fr != (wire.Welcome{Version: wire.Version, Name: "bob"}) {
				t.Fatalf("frame %d from bob is %#v", i, fr)
			}
		case wire.Refuse:
			if i != 0 || mode == fuzzAfterHello {
				t.Fatalf("frame %d from bob is %#v", i, fr)
			}
			if r.Buffered() > 0 {
				t.Fatalf("bob sent %q after a refuse", b)
			}
		case wire.Ack, wire.Held, wire.Probe, wire.Probed:
			if i == 0 {
				t.Fatalf("bob's first frame is %#v", fr)
			}
		case wire.Card:
			// Bob's card, once alice is welcomed: it must be his, signed.
			if i == 0 {
				t.Fatalf("bob's first frame is %#v", fr)
			}
			if c, _, err := trust.VerifyCard(fr); err != nil || c.Name != "bob" {
				t.Fatalf("frame %d from bob is a card that is not his: %v", i, err)
			}
		default:
			t.Fatalf("frame %d from bob is %#v", i, fr)
		}
		if i == 0 && mode == fuzzAfterHello {
			if _, ok := fr.(wire.Welcome); !ok {
				t.Fatalf("bob answered a valid hello with %#v", fr)
			}
		}
	}
}
