package network

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"p2pchat/network/wire"

	"p2pchat/network/trust"
)

// maxDialTimeout bounds the dial and handshake timeouts, which double with
// every attempt in a row that failed, so that a slow link still connects.
const maxDialTimeout = time.Minute

// grown is timeout d after fails failed attempts in a row.
func grown(d time.Duration, fails int) time.Duration {
	for ; fails > 0 && d < maxDialTimeout; fails-- {
		d *= 2
	}
	return min(d, maxDialTimeout)
}

// dial connects to the friend and runs the TLS handshake, where the
// server's certificate must be the friend's (ClientConfig), and puts our
// hello in the write buffer: it goes out with the first messages, in the
// same flight, without waiting for the welcome. The welcome (or a refuse)
// is the first frame readAcks reads; it must carry the friend's name, and
// a friend seen for the first time has its identity pinned then, before
// any ack counts. So a message is shown two round trips after the dial
// begins (TCP, then TLS), not three. fails is how many attempts before this
// one failed in a row.
func (n *Node) dial(ctx context.Context, to Friend, fails int, log *slog.Logger) (*clientConn, error) {
	d := net.Dialer{Timeout: grown(DialTimeout, fails)}
	raw, err := d.DialContext(ctx, "tcp", to.Addr())
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	conn := tls.Client(raw, n.pins.ClientConfig(to.Name))
	handshake := grown(n.cfg.HandshakeTimeout, fails)
	conn.SetDeadline(time.Now().Add(handshake))
	c := &clientConn{
		conn:     conn,
		br:       bufio.NewReaderSize(conn, 4096),
		bw:       bufio.NewWriterSize(conn, 32<<10),
		ackReady: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	c.state = conn.ConnectionState()
	c.id = trust.CertID(c.state.PeerCertificates[0].Raw)
	c.welcome = func(w wire.Welcome) error {
		switch {
		case w.Name != to.Name:
			return fmt.Errorf("it answered as %q, not %s", w.Name, to.Name)
		case w.Version != wire.Version:
			return fmt.Errorf("%w (it speaks protocol version %d, we speak %d)", ErrUpgrade, w.Version, wire.Version)
		}
		pinned, err := n.pins.PinFirstUse(to.Name, c.id)
		if pinned {
			log.Warn("identity pinned on first use", "id", c.id.String())
			n.emit(ctx, IdentityPinned{Name: to.Name, Addr: to.Addr(), ID: c.id})
		}
		return err
	}
	if err := wire.WriteFrame(c.bw, wire.Hello{Version: wire.Version, Name: n.self.Name}); err != nil {
		raw.Close()
		return nil, err
	}
	// The welcome has the rest of the handshake timeout; writes get their
	// own deadlines.
	conn.SetWriteDeadline(time.Time{})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		c.readAcks(make([]byte, wire.MaxFrameSize))
	}()
	return c, nil
}

// clientConn is an open connection to a friend. The outbox's goroutine
// writes; readAcks reads.
type clientConn struct {
	conn  net.Conn
	state tls.ConnectionState
	id    ID // the friend's, checked
	br    *bufio.Reader
	bw    *bufio.Writer
	// Acks read and not yet taken, in order. The queue is unbounded so
	// that reading acks never waits for the peer goroutine, which may be
	// busy writing: were both sides to stop reading while they write, a
	// long backlog would deadlock until a write deadline.
	ackMu    sync.Mutex
	acks     []wire.Ack
	ackReady chan struct{} // signalled when acks grows
	done     chan struct{} // closed when readAcks returns; err says why
	err      error
	once     sync.Once
	// welcome checks the friend's welcome, the first frame it sends;
	// welcomed is set once it passed (read it after done is closed).
	welcome  func(wire.Welcome) error
	welcomed bool
}

// takeAcks returns the acks read since the last call.
func (c *clientConn) takeAcks() []wire.Ack {
	c.ackMu.Lock()
	defer c.ackMu.Unlock()
	a := c.acks
	c.acks = nil
	return a
}

// write sends batch, each message with its stream's low-water mark from
// lows, each writeChunk messages under a fresh deadline, so that a long
// backlog to a friend who reads is not cut off as a stall.
func (c *clientConn) write(batch []outgoing, lows []uint64) error {
	for i, m := range batch {
		if i%writeChunk == 0 {
			c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		}
		if err := wire.WriteFrame(c.bw, wire.Message{Stream: m.stream, Seq: m.seq, Low: lows[i], Sent: m.created, Text: m.text}); err != nil {
			return err
		}
	}
	return c.bw.Flush()
}

// readAcks reads the welcome, then acks, until the connection ends.
func (c *clientConn) readAcks(buf []byte) {
	defer close(c.done)
	for {
		f, err := wire.ReadFrame(c.br, buf)
		if err != nil {
			c.err = err
			return
		}
		if !c.welcomed {
			c.err = c.takeWelcome(f)
			if c.err != nil {
				return
			}
			continue
		}
		switch f := f.(type) {
		case wire.Ack:
			c.ackMu.Lock()
			c.acks = append(c.acks, f)
			c.ackMu.Unlock()
			select {
			case c.ackReady <- struct{}{}:
			default:
			}
		case wire.Refuse:
			c.err = &RefusedError{Reason: f.Reason}
			return
		default:
			c.err = fmt.Errorf("%w: expected an ack, got frame type %d", wire.ErrBadFrame, f.Type())
			return
		}
	}
}

// takeWelcome checks the first frame the friend sent.
func (c *clientConn) takeWelcome(f wire.Frame) error {
	switch f := f.(type) {
	case wire.Welcome:
		if err := c.welcome(f); err != nil {
			return err
		}
		c.welcomed = true
		c.conn.SetReadDeadline(time.Time{})
		return nil
	case wire.Refuse:
		if strings.Contains(f.Reason, "unsupported protocol version") {
			// What p2pchat 0.1 answers to a newer hello.
			return fmt.Errorf("%w: it refused protocol version %d", ErrUpgrade, wire.Version)
		}
		return &RefusedError{Reason: f.Reason}
	default:
		return fmt.Errorf("%w: expected a welcome, got frame type %d", wire.ErrBadFrame, f.Type())
	}
}

// close closes the connection and waits for readAcks to return.
func (c *clientConn) close() {
	c.once.Do(func() {
		c.conn.Close()
	})
	<-c.done
}
