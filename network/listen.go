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
	"sync/atomic"
	"syscall"
	"time"

	"p2pchat/network/wire"

	"p2pchat/network/trust"
)

// serve is the accept loop: one goroutine and one serverConn per inbound
// connection. As net/http's Server does, it waits and tries again after a
// temporary error (out of descriptors), and returns on any other one: the
// listener is closed, or broken.
func (n *Node) serve(ctx context.Context) {
	var delay time.Duration
	for {
		conn, err := n.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			if !isTemporary(err) {
				n.log.Error("accept failed: no longer listening", "err", err)
				return
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			n.log.Warn("accept failed", "err", err, "retry_in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		delay = 0
		c := &serverConn{node: n, raw: conn, addr: conn.RemoteAddr().String()}
		c.log = n.log.With("remote", c.addr)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			c.serve(ctx)
		}()
	}
}

// isTemporary reports whether an accept error is worth waiting out: the
// process or the system is out of descriptors or of memory, or a client
// gave up before it was accepted.
func isTemporary(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// serverConn is one inbound connection: TLS with the client's certificate
// checked and the hello answered here, then a conn that carries frames
// both ways, as a dialled one does.
type serverConn struct {
	node *Node
	raw  net.Conn
	addr string
	log  *slog.Logger

	conn *tls.Conn
	br   *bufio.Reader
	bw   *bufio.Writer
	buf  []byte // scratch for the hello
	name string // the friend, once the hello named it
	id   ID     // its identity, once TLS checked it
	link *conn  // once the handshake is done

	forgotten atomic.Bool // Node.Forget closed it
	since     time.Time   // when it was accepted as the friend's; under node.mu
}

// shut closes the connection from outside its goroutines: even one that
// reads nothing, paused by the friend's budget, ends. node.mu is held.
func (c *serverConn) shut() {
	c.raw.Close()
	c.link.stop()
}

// maxInboundPerFriend bounds the inbound connections one friend may hold
// open; past it the oldest is closed. A friend needs one; a few more cover
// a reconnect while the old one has not yet timed out.
const maxInboundPerFriend = 4

// serve runs the connection until it ends, and closes it.
func (c *serverConn) serve(ctx context.Context) {
	n := c.node
	defer c.raw.Close()
	stop := context.AfterFunc(ctx, func() { c.raw.Close() })
	defer stop()
	watched, evict := n.admit.admit(c.raw)
	for _, old := range evict {
		c.log.Warn("too many unauthenticated connections: closing the one least far in its handshake", "closed", old.RemoteAddr().String())
		old.Close()
	}

	c.conn = tls.Server(watched, n.tls)
	c.br = bufio.NewReaderSize(c.conn, 4096)
	c.bw = bufio.NewWriterSize(c.conn, 4096)
	c.buf = make([]byte, wire.MaxFrameSize)

	err := c.handshake(ctx)
	if !n.admit.done(c.raw) && err == nil {
		err = errors.New("closed to make room for newer connections")
	}
	if err != nil {
		c.raw.Close() // before anyone hears of it
		switch {
		case ctx.Err() != nil:
		case errors.Is(err, io.EOF):
			// Closed before it said anything wrong: a friend that quit
			// in the middle, not an attack.
			c.log.Info("connection closed during the handshake", "name", c.name, "err", err)
		default:
			c.log.Warn("connection refused", "name", c.name, "err", err)
			n.emit(ctx, ConnRefused{Addr: c.addr, Name: c.name, Err: err})
		}
		return
	}
	c.log = c.log.With("friend", c.name)
	c.link = newConn(n, c.conn, c.br, c.bw)
	c.link.friend, c.link.id, c.link.addr, c.link.inbound = c.name, c.id, c.addr, true
	c.link.silence = 2 * n.cfg.IdleTimeout
	c.link.tlsVersion = c.conn.ConnectionState().Version
	n.mu.Lock()
	if n.inbound[c.name] == nil {
		n.inbound[c.name] = make(map[*serverConn]struct{})
	}
	c.since = time.Now()
	n.inbound[c.name][c] = struct{}{}
	for len(n.inbound[c.name]) > maxInboundPerFriend {
		// One friend (or whoever holds their key, or claims a first-use
		// name) cannot hold more than a few descriptors: the oldest goes,
		// out of the count at once, so that a connection closed but not
		// yet ended is never taken for the oldest again.
		var oldest *serverConn
		for o := range n.inbound[c.name] {
			if oldest == nil || o.since.Before(oldest.since) {
				oldest = o
			}
		}
		c.log.Warn("too many connections from one friend: closing the oldest", "closed", oldest.addr)
		oldest.shut()
		delete(n.inbound[c.name], oldest)
	}
	n.mu.Unlock()
	n.outboxes[c.name].reached() // whatever waits for them goes now
	n.emit(ctx, ConnUp{Friend: c.name, Addr: c.addr, Inbound: true, ID: c.id, TLSVersion: c.link.tlsVersion})
	// After the event: once the log says so, Status (presence) says so too.
	c.log.Info("inbound connection up")

	err = c.link.run(ctx)
	if c.forgotten.Load() {
		err = ErrForgotten
	}

	n.mu.Lock()
	delete(n.inbound[c.name], c)
	n.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	switch {
	case errors.Is(err, wire.ErrBadFrame), errors.Is(err, wire.ErrFrameTooLarge):
		c.log.Warn("protocol violation, connection closed", "err", err)
		n.emit(ctx, ConnRefused{Addr: c.addr, Name: c.name, Err: err})
		n.emit(ctx, ConnDown{Friend: c.name, Addr: c.addr, Inbound: true, Err: err})
	case isTimeout(err):
		c.log.Info("inbound connection idle, closed")
		n.emit(ctx, ConnDown{Friend: c.name, Addr: c.addr, Inbound: true, Err: ErrIdle})
	default:
		c.log.Info("inbound connection down", "err", err)
		n.emit(ctx, ConnDown{Friend: c.name, Addr: c.addr, Inbound: true, Err: err})
	}
}

// handshake runs the TLS handshake (the client's certificate is checked in
// serverTLS), reads the hello and answers it with a welcome or a refuse, all
// within the handshake timeout. It sets c.name to the name the client
// claimed, if it got that far, and c.id to its ID.
func (c *serverConn) handshake(ctx context.Context) error {
	n := c.node
	c.conn.SetDeadline(time.Now().Add(n.cfg.HandshakeTimeout))
	if err := c.conn.HandshakeContext(ctx); err != nil {
		var idErr *IdentityError
		switch {
		case errors.As(err, &idErr):
			c.name = idErr.Name
			return idErr
		case isTimeout(err):
			return fmt.Errorf("no TLS handshake within %v", n.cfg.HandshakeTimeout)
		}
		return &handshakeError{err}
	}
	cert := c.conn.ConnectionState().PeerCertificates[0]
	c.id = trust.CertID(cert.Raw)
	if _, src := n.pins.Pinned(cert.Subject.CommonName); src != NotPinned {
		// TLS checked the pin: strangers can no longer crowd it out.
		for _, old := range n.admit.proved(c.raw, c.id) {
			c.log.Warn("too many handshakes with one friend's identity: closing the oldest", "closed", old.RemoteAddr().String())
			old.Close()
		}
	}
	f, err := wire.ReadFrame(c.br, c.buf)
	if err != nil {
		if isTimeout(err) {
			return fmt.Errorf("no hello within %v", n.cfg.HandshakeTimeout)
		}
		return fmt.Errorf("bad hello: %w", err)
	}
	h, ok := f.(wire.Hello)
	if !ok {
		return fmt.Errorf("%w: expected a hello, got frame type %d", wire.ErrBadFrame, f.Type())
	}
	c.name = h.Name
	refuseWith := func(err error) error {
		c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		wire.WriteFrame(c.bw, wire.Refuse{Reason: err.Error()})
		c.bw.Flush()
		return err
	}
	if h.Version != wire.Version {
		return refuseWith(fmt.Errorf("%w: protocol version %d is not spoken here (%s runs a p2pchat that speaks %d)", ErrUpgrade, h.Version, n.self.Name, wire.Version))
	}
	if h.Name == n.self.Name {
		return refuseWith(fmt.Errorf("hello claims to be %s, which is this instance", h.Name))
	}
	if _, ok := n.outboxes[h.Name]; !ok {
		return refuseWith(fmt.Errorf("%w %q: not in %s's table", ErrUnknownFriend, h.Name, n.self.Name))
	}
	if err := n.pins.Check(h.Name, cert); err != nil {
		return refuseWith(err)
	}
	if pinned, err := n.pins.PinFirstUse(h.Name, c.id); err != nil {
		return refuseWith(err)
	} else if pinned {
		n.log.Warn("identity pinned on first use", "friend", h.Name, "id", c.id.String())
		n.emitSoon(IdentityPinned{Name: h.Name, Addr: c.addr, ID: c.id})
	}
	if err := wire.WriteFrame(c.bw, wire.Welcome{Version: wire.Version, Name: n.self.Name}); err != nil {
		return err
	}
	if err := c.bw.Flush(); err != nil {
		return err
	}
	c.conn.SetDeadline(time.Time{})
	return nil
}

// handshakeError is a failed TLS handshake on an inbound connection.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string {
	if certRejected(e.err) {
		return "it gave up: " + reason(e.err)
	}
	return "TLS handshake failed: " + reason(e.err)
}

// Is makes errors.Is(err, ErrCertRejected) true when the other side ended
// the handshake because it does not accept our certificate.
func (e *handshakeError) Is(target error) bool {
	return target == ErrCertRejected && certRejected(e.err)
}

func (e *handshakeError) Unwrap() error { return e.err }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
