package network

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// outgoing is a message on its way to a friend.
type outgoing struct {
	id      uint64
	text    string
	created time.Time
	written time.Time // when it was written to the current connection
}

// peer owns everything outbound to one friend: the send queue, the lazily
// dialled client connection, its idle timer and the wait for acks. All of it
// runs in one goroutine, run; the mutex guards only what Send and Peers read.
type peer struct {
	node   *Node
	friend Friend
	log    *slog.Logger
	wake   chan struct{} // signalled when queue grows

	mu         sync.Mutex
	queue      []outgoing // not yet written
	nextID     uint64
	pending    int // queued or written, not yet acknowledged or failed
	connected  bool
	lastActive time.Time
}

func newPeer(n *Node, f Friend) *peer {
	return &peer{
		node:   n,
		friend: f,
		log:    n.log.With("peer", f.Name, "addr", f.Addr()),
		wake:   make(chan struct{}, 1),
	}
}

func (p *peer) enqueue(text string) uint64 {
	p.mu.Lock()
	p.nextID++
	id := p.nextID
	p.queue = append(p.queue, outgoing{id: id, text: text, created: time.Now()})
	p.pending++
	p.mu.Unlock()
	select {
	case p.wake <- struct{}{}:
	default:
	}
	return id
}

func (p *peer) take() []outgoing {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queue
	p.queue = nil
	return q
}

func (p *peer) status() PeerStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := PeerStatus{Friend: p.friend, Connected: p.connected, Pending: p.pending}
	if p.connected {
		s.Idle = time.Since(p.lastActive).Truncate(time.Second)
	}
	return s
}

func (p *peer) setConnected(up bool) {
	p.mu.Lock()
	p.connected = up
	p.lastActive = time.Now()
	p.mu.Unlock()
}

func (p *peer) touch() {
	p.mu.Lock()
	p.lastActive = time.Now()
	p.mu.Unlock()
}

func (p *peer) settle(n int) {
	p.mu.Lock()
	p.pending -= n
	p.mu.Unlock()
}

// run is the peer's only goroutine. It dials when there is something to
// send and no connection, writes, matches acks, and closes the connection
// when it has been idle for the idle timeout or an ack is overdue.
func (p *peer) run(ctx context.Context) {
	idleTimeout := p.node.cfg.IdleTimeout
	var (
		c        *clientConn
		inflight []outgoing // written, awaiting ack, oldest first
	)
	idle := time.NewTimer(idleTimeout)
	idle.Stop()
	ackTimeout := p.node.cfg.AckTimeout
	ackDue := time.NewTimer(ackTimeout)
	ackDue.Stop()

	fail := func(msgs []outgoing, err error) {
		for _, m := range msgs {
			p.node.emit(ctx, MessageFailed{To: p.friend.Name, ID: m.id, Text: m.text, Err: err})
		}
		p.settle(len(msgs))
	}
	// drop closes the connection; err is why, for the log and the event.
	drop := func(err error) {
		c.close()
		c = nil
		idle.Stop()
		ackDue.Stop()
		p.setConnected(false)
		if errors.Is(err, ErrIdle) {
			p.log.Info("client connection closed", "reason", "idle")
		} else {
			p.log.Warn("client connection lost", "err", err)
		}
		if len(inflight) > 0 {
			fail(inflight, &AckError{Name: p.friend.Name, Err: err})
			inflight = nil
		}
		p.node.emit(ctx, PeerDown{Name: p.friend.Name, Addr: p.friend.Addr(), Err: err})
	}
	armAck := func() {
		if len(inflight) == 0 {
			ackDue.Stop()
			return
		}
		ackDue.Reset(time.Until(inflight[0].written.Add(ackTimeout)))
	}

	for {
		var acks <-chan uint64
		var done <-chan struct{}
		if c != nil {
			acks, done = c.acks, c.done
		}
		select {
		case <-ctx.Done():
			if c != nil {
				c.close()
			}
			return

		case <-p.wake:
			batch := p.take()
			if len(batch) == 0 {
				continue
			}
			if c == nil {
				var err error
				c, err = p.dial(ctx)
				if err != nil {
					if ctx.Err() != nil {
						return
					}
					p.log.Warn("dial failed", "err", err)
					fail(batch, &ReachError{Name: p.friend.Name, Addr: p.friend.Addr(), Err: err})
					continue
				}
				p.setConnected(true)
				p.log.Info("client connection up")
				p.node.emit(ctx, PeerUp{Name: p.friend.Name, Addr: p.friend.Addr(), ID: c.id, TLSVersion: c.state.Version})
			}
			now := time.Now()
			for i := range batch {
				batch[i].written = now
			}
			wasEmpty := len(inflight) == 0
			inflight = append(inflight, batch...)
			if err := c.write(batch); err != nil {
				drop(err)
				continue
			}
			if wasEmpty {
				armAck()
			}
			p.touch()
			idle.Reset(idleTimeout)

		case id := <-acks:
			i := 0
			for i < len(inflight) && inflight[i].id != id {
				i++
			}
			if i == len(inflight) {
				drop(fmt.Errorf("%w: ack for message %d, which was not sent", ErrBadFrame, id))
				continue
			}
			inflight = append(inflight[:i], inflight[i+1:]...)
			p.settle(1)
			p.touch()
			idle.Reset(idleTimeout)
			if i == 0 {
				armAck()
			}
			p.node.emit(ctx, MessageDelivered{To: p.friend.Name, ID: id})

		case <-done:
			drop(c.err)

		case <-idle.C:
			if len(inflight) > 0 {
				idle.Reset(idleTimeout) // waiting for acks is not idleness
				continue
			}
			drop(ErrIdle)

		case <-ackDue.C:
			if len(inflight) > 0 && time.Since(inflight[0].written) >= ackTimeout {
				drop(fmt.Errorf("%w within %v", ErrNoAck, ackTimeout))
			} else {
				armAck()
			}
		}
	}
}

// dial connects to the friend and runs the client side of the handshake:
// TLS, where the server's certificate must be the friend's (clientTLS), then
// our hello and their welcome, which must carry the friend's name. A friend
// seen for the first time has its identity pinned once all of that passed.
func (p *peer) dial(ctx context.Context) (*clientConn, error) {
	d := net.Dialer{Timeout: DialTimeout}
	raw, err := d.DialContext(ctx, "tcp", p.friend.Addr())
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	conn := tls.Client(raw, p.node.clientTLS(p.friend.Name))
	conn.SetDeadline(time.Now().Add(p.node.cfg.HandshakeTimeout))
	c := &clientConn{
		conn: conn,
		br:   bufio.NewReaderSize(conn, 4096),
		bw:   bufio.NewWriterSize(conn, 32<<10),
		acks: make(chan uint64),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	buf := make([]byte, MaxFrameSize)
	err = conn.HandshakeContext(ctx)
	if err == nil {
		err = writeFrame(c.bw, hello{Version: ProtocolVersion, Name: p.node.self.Name})
	}
	if err == nil {
		err = c.bw.Flush()
	}
	var f frame
	if err == nil {
		f, err = readFrame(c.br, buf)
	}
	if err == nil {
		switch f := f.(type) {
		case welcome:
			if f.Name != p.friend.Name {
				err = fmt.Errorf("it answered as %q, not %s", f.Name, p.friend.Name)
			} else if f.Version != ProtocolVersion {
				err = fmt.Errorf("it speaks protocol version %d, we speak %d", f.Version, ProtocolVersion)
			}
		case refuse:
			err = &RefusedError{Reason: f.Reason}
		default:
			err = fmt.Errorf("%w: expected a welcome, got frame type %d", ErrBadFrame, f.frameType())
		}
	}
	if err == nil {
		c.state = conn.ConnectionState()
		c.id = CertID(c.state.PeerCertificates[0].Raw)
		var pinned bool
		if pinned, err = p.node.pinFirstUse(p.friend.Name, c.id); pinned {
			p.log.Warn("identity pinned on first use", "id", c.id.String())
			p.node.emit(ctx, IdentityPinned{Name: p.friend.Name, Addr: p.friend.Addr(), ID: c.id})
		}
	}
	if err != nil {
		raw.Close()
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	p.node.wg.Add(1)
	go func() {
		defer p.node.wg.Done()
		c.readAcks(buf)
	}()
	return c, nil
}

// clientConn is an open connection to a friend. The peer goroutine writes;
// readAcks reads.
type clientConn struct {
	conn  net.Conn
	state tls.ConnectionState
	id    ID // the friend's, checked
	br    *bufio.Reader
	bw    *bufio.Writer
	acks  chan uint64   // acks read, in order
	quit  chan struct{} // closed by close: stop delivering acks
	done  chan struct{} // closed when readAcks returns; err says why
	err   error
	once  sync.Once
}

func (c *clientConn) write(batch []outgoing) error {
	c.conn.SetWriteDeadline(time.Now().Add(writeTimeout))
	for _, m := range batch {
		if err := writeFrame(c.bw, message{ID: m.id, Sent: m.created, Text: m.text}); err != nil {
			return err
		}
	}
	return c.bw.Flush()
}

func (c *clientConn) readAcks(buf []byte) {
	defer close(c.done)
	for {
		f, err := readFrame(c.br, buf)
		if err != nil {
			c.err = err
			return
		}
		switch f := f.(type) {
		case ack:
			select {
			case c.acks <- f.ID:
			case <-c.quit:
				c.err = net.ErrClosed
				return
			}
		case refuse:
			c.err = &RefusedError{Reason: f.Reason}
			return
		default:
			c.err = fmt.Errorf("%w: expected an ack, got frame type %d", ErrBadFrame, f.frameType())
			return
		}
	}
}

// close closes the connection and waits for readAcks to return.
func (c *clientConn) close() {
	c.once.Do(func() {
		close(c.quit)
		c.conn.Close()
	})
	<-c.done
}

// RefusedError means the friend's instance refused our connection.
type RefusedError struct {
	Reason string // as the friend sent it: not to be printed unescaped
}

func (e *RefusedError) Error() string { return "refused: " + e.Reason }

// AckError means a message was written to a connection that ended, or went
// silent, before the friend acknowledged it: it may or may not have arrived.
type AckError struct {
	Name string
	Err  error
}

func (e *AckError) Error() string {
	return fmt.Sprintf("%s did not acknowledge the message: %s", e.Name, reason(e.Err))
}

func (e *AckError) Unwrap() error { return e.Err }
