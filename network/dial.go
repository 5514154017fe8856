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

// dial connects to the friend and runs the client side of the handshake:
// TLS, where the server's certificate must be the friend's (clientTLS), then
// our hello and their welcome, which must carry the friend's name. A friend
// seen for the first time has its identity pinned once all of that passed.
// fails is how many attempts before this one failed in a row.
func (n *Node) dial(ctx context.Context, to Friend, fails int, log *slog.Logger) (*clientConn, error) {
	d := net.Dialer{Timeout: grown(DialTimeout, fails)}
	raw, err := d.DialContext(ctx, "tcp", to.Addr())
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	conn := tls.Client(raw, n.pins.ClientConfig(to.Name))
	conn.SetDeadline(time.Now().Add(grown(n.cfg.HandshakeTimeout, fails)))
	c := &clientConn{
		conn:     conn,
		br:       bufio.NewReaderSize(conn, 4096),
		bw:       bufio.NewWriterSize(conn, 32<<10),
		ackReady: make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
	buf := make([]byte, wire.MaxFrameSize)
	err = conn.HandshakeContext(ctx)
	if err == nil {
		err = wire.WriteFrame(c.bw, wire.Hello{Version: wire.Version, Name: n.self.Name})
	}
	if err == nil {
		err = c.bw.Flush()
	}
	var f wire.Frame
	if err == nil {
		f, err = wire.ReadFrame(c.br, buf)
	}
	if err == nil {
		switch f := f.(type) {
		case wire.Welcome:
			if f.Name != to.Name {
				err = fmt.Errorf("it answered as %q, not %s", f.Name, to.Name)
			} else if f.Version != wire.Version {
				err = fmt.Errorf("%w (it speaks protocol version %d, we speak %d)", ErrUpgrade, f.Version, wire.Version)
			}
		case wire.Refuse:
			err = &RefusedError{Reason: f.Reason}
			if strings.Contains(f.Reason, "unsupported protocol version") {
				// What p2pchat 0.1 answers to a newer hello.
				err = fmt.Errorf("%w: it refused protocol version %d", ErrUpgrade, wire.Version)
			}
		default:
			err = fmt.Errorf("%w: expected a welcome, got frame type %d", wire.ErrBadFrame, f.Type())
		}
	}
	if err == nil {
		c.state = conn.ConnectionState()
		c.id = trust.CertID(c.state.PeerCertificates[0].Raw)
		var pinned bool
		if pinned, err = n.pins.PinFirstUse(to.Name, c.id); pinned {
			log.Warn("identity pinned on first use", "id", c.id.String())
			n.emit(ctx, IdentityPinned{Name: to.Name, Addr: to.Addr(), ID: c.id})
		}
	}
	if err != nil {
		raw.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		c.readAcks(buf)
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

func (c *clientConn) readAcks(buf []byte) {
	defer close(c.done)
	for {
		f, err := wire.ReadFrame(c.br, buf)
		if err != nil {
			c.err = err
			return
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

// close closes the connection and waits for readAcks to return.
func (c *clientConn) close() {
	c.once.Do(func() {
		c.conn.Close()
	})
	<-c.done
}
