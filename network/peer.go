package network

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"p2pchat/network/store"

	"p2pchat/network/wire"
)

// outgoing is a message on its way to a friend.
type outgoing struct {
	row      int64 // its row in the store
	stream   wire.StreamID
	seq      uint64
	text     string
	created  time.Time
	record   *store.Pending // its write to the store
	durable  bool           // the write is done
	reported bool           // a MessageQueued event was emitted for it
}

// Backoff between attempts to reach a friend who cannot be reached: from
// retryMin, doubling to retryMax, each wait randomised by ±retryJitter.
const (
	retryMin    = 250 * time.Millisecond
	retryMax    = 10 * time.Second
	retryJitter = 0.2
	// sendNudge is the shortest time between two attempts made because the
	// person sent a new message while the friend was offline.
	sendNudge = time.Second
	// maxInFlight bounds the messages written and not yet acknowledged,
	// and so the memory that tracks them; more goes out as acks come back.
	maxInFlight = 1 << 16
	// writeChunk is how many messages go out under one write deadline.
	writeChunk = 1024
)

// peer owns everything outbound to one friend: the durable queue, the
// lazily dialled client connection, its idle timer, acks, and retries. It
// also serialises what is received from the friend (recvMu), so that
// duplicates are recognised across connections. The goroutine run does the
// work; the mutex guards what Send, Peers and the store's writer touch.
type peer struct {
	node   *Node
	friend Friend
	log    *slog.Logger
	wake   chan struct{} // something changed: look again

	mu         sync.Mutex
	queue      []outgoing               // sent by the person, not yet acknowledged, in order
	low        map[wire.StreamID]uint64 // per stream, everything up to this was acknowledged
	closed     bool                     // the node stopped
	connected  bool
	lastActive time.Time
	offline    bool // the last attempt to reach the friend failed
	kicked     bool // the friend connected to us: try again at once

	recvMu   sync.Mutex
	lastIn   map[wire.StreamID]uint64 // highest sequence number received, per stream seen this run
	replayed chan struct{}            // closed once replay is done; receive waits for it
}

func newPeer(n *Node, f Friend) (*peer, error) {
	p := &peer{
		node:   n,
		friend: f,
		log:    n.log.With("peer", f.Name, "addr", f.Addr()),
		wake:   make(chan struct{}, 1),
		low:    make(map[wire.StreamID]uint64),
		lastIn: make(map[wire.StreamID]uint64),

		replayed: make(chan struct{}),
	}
	queued, err := n.store.Queue(f.Name)
	if err != nil {
		return nil, err
	}
	for _, r := range queued {
		// Waiting since an earlier run: the person was told then, and hears
		// of the delivery when it comes.
		p.queue = append(p.queue, outgoing{row: r.Row, stream: r.Stream, seq: r.Seq, text: r.Text, created: r.Sent, durable: true, reported: true})
		if _, ok := p.low[r.Stream]; !ok {
			p.low[r.Stream] = r.Seq - 1
		}
	}
	if len(p.queue) > 0 {
		p.poke()
	}
	return p, nil
}

func (p *peer) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// send queues text for the friend under the next sequence number of this
// run's stream, and hands it to the store; the peer goroutine puts it on
// the wire at once and waits for the store while the friend receives it.
// It returns the sequence number.
func (p *peer) send(text string) (uint64, error) {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return 0, net.ErrClosed
	}
	out, rec := p.node.store.AddOut(p.friend.Name, text, now)
	p.queue = append(p.queue, outgoing{row: out.Row, stream: out.Stream, seq: out.Seq, text: text, created: now, record: rec})
	p.poke()
	return out.Seq, nil
}

// stop makes later sends fail, once the peer goroutine has returned.
func (p *peer) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
}

// replay hands on again what was received from the friend and recorded,
// but never marked shown: the last run ended between the two. Nothing newer
// from the friend is handed on before it is done (receive waits).
func (p *peer) replay(ctx context.Context) {
	defer close(p.replayed)
	recs, err := p.node.store.Unshown(p.friend.Name)
	if err != nil {
		p.log.Error("cannot read messages not yet shown", "err", err)
		return
	}
	for _, r := range recs {
		if !p.node.emit(ctx, MessageReceived{From: p.friend.Name, Seq: r.Seq, Sent: r.Sent, Text: r.Text, row: r.Row}) {
			return
		}
	}
}

// kick is called when the friend connects to us: they are reachable, so
// whatever waits goes out now.
func (p *peer) kick() {
	p.mu.Lock()
	p.kicked = true
	p.mu.Unlock()
	p.poke()
}

func (p *peer) status() PeerStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := PeerStatus{Friend: p.friend, Connected: p.connected, Pending: len(p.queue), Offline: p.offline}
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

// sender is the state of run: the connection and what was written on it.
type sender struct {
	fails    int         // attempts in a row that failed to reach the friend
	lastErr  error       // why the friend could not be reached, last time
	c        *clientConn // nil when not connected
	sent     int         // p.queue[:sent] is written on c, awaiting acks
	written  []time.Time // when each of those was written
	backoff  time.Duration
	retryAt  time.Time // no dial before this, unless nudged
	lastDial time.Time
}

// run is the peer's only goroutine. It dials when something waits and no
// connection is open, writes everything that waits, matches acks, and
// closes the connection when it has been idle for the idle timeout. A
// connection that breaks, or leaves a message unacknowledged for the ack
// timeout, is dropped and everything unacknowledged goes out again on the
// next one; the receiver recognises what it already has.
func (p *peer) run(ctx context.Context) {
	p.replay(ctx)
	idleTimeout, ackTimeout := p.node.cfg.IdleTimeout, p.node.cfg.AckTimeout
	var s sender
	idle := time.NewTimer(idleTimeout)
	idle.Stop()
	ackDue := time.NewTimer(ackTimeout)
	ackDue.Stop()
	retry := time.NewTimer(retryMax)
	retry.Stop()

	drop := func(err error) {
		s.c.close()
		s.c, s.sent, s.written = nil, 0, nil
		idle.Stop()
		ackDue.Stop()
		p.setConnected(false)
		if errors.Is(err, ErrIdle) {
			p.log.Info("client connection closed", "reason", "idle")
		} else {
			// Not at once again: a friend that keeps accepting and
			// dropping us must not have us spin. A delivery resets this.
			s.backoff = nextBackoff(s.backoff)
			s.retryAt = time.Now().Add(s.backoff)
			retry.Reset(s.backoff)
			p.log.Warn("client connection lost", "err", err, "retry_in", s.backoff)
		}
		p.node.emit(ctx, PeerDown{Name: p.friend.Name, Addr: p.friend.Addr(), Err: err})
	}
	armAck := func() {
		if len(s.written) == 0 {
			ackDue.Stop()
			return
		}
		ackDue.Reset(time.Until(s.written[0].Add(ackTimeout)))
	}

	// onAck takes the friend's acknowledgement of a, which must be of the
	// oldest message written.
	var delivered int64 // the last row acknowledged, to mark in the store
	onAck := func(a wire.Ack) error {
		p.mu.Lock()
		ok := s.sent > 0 && p.queue[0].seq == a.Seq && p.queue[0].stream == a.Stream
		var m outgoing
		if ok {
			m = p.queue[0]
			p.queue = p.queue[1:]
			p.offline = false
			p.low[m.stream] = m.seq
		}
		p.mu.Unlock()
		if !ok {
			return fmt.Errorf("%w: ack for message %d, which is not the oldest unacknowledged", wire.ErrBadFrame, a.Seq)
		}
		s.sent--
		s.written = s.written[1:]
		s.backoff = 0
		armAck()
		p.touch()
		idle.Reset(idleTimeout)
		delivered = m.row
		p.node.emit(ctx, MessageDelivered{To: p.friend.Name, Seq: m.seq, Text: m.text, Sent: m.created, WasQueued: m.reported})
		return nil
	}
	// markDelivered records the acks taken, one write per batch of them.
	markDelivered := func() {
		if delivered != 0 {
			p.node.store.MarkDelivered(p.friend.Name, delivered)
			delivered = 0
		}
	}

	for {
		var acks <-chan struct{}
		var done <-chan struct{}
		if s.c != nil {
			acks, done = s.c.ackReady, s.c.done
		}
		select {
		case <-ctx.Done():
			if s.c != nil {
				s.c.close()
			}
			return

		case <-p.wake:
		case <-retry.C:

		case <-acks:
			for _, a := range s.c.takeAcks() {
				if err := onAck(a); err != nil {
					drop(err)
					break
				}
			}
			markDelivered()

		case <-done:
			// Acks read before the end still count.
			err := s.c.err
			for _, a := range s.c.takeAcks() {
				if ackErr := onAck(a); ackErr != nil {
					err = ackErr
					break
				}
			}
			markDelivered()
			drop(err)

		case <-idle.C:
			if s.sent > 0 {
				idle.Reset(idleTimeout) // waiting for acks is not idleness
				continue
			}
			drop(ErrIdle)

		case <-ackDue.C:
			if len(s.written) > 0 && time.Since(s.written[0]) >= ackTimeout {
				drop(fmt.Errorf("%w within %v: connection taken for dead", ErrNoAck, ackTimeout))
			} else {
				armAck()
			}
		}
		p.pump(ctx, &s, retry, idle, armAck)
	}
}

// pump reports what needs reporting and sends whatever waits, dialling if
// it is time to.
func (p *peer) pump(ctx context.Context, s *sender, retry, idle *time.Timer, armAck func()) {
	p.mu.Lock()
	waiting := len(p.queue) - s.sent
	kicked := p.kicked
	p.kicked = false
	p.mu.Unlock()
	if waiting == 0 {
		return
	}
	if s.c == nil {
		now := time.Now()
		if kicked {
			s.backoff, s.retryAt = 0, now
		}
		p.mu.Lock()
		offline := p.offline
		p.mu.Unlock()
		if now.Before(s.retryAt) {
			// Waiting out the backoff (the retry timer ends it). For a
			// friend who could not be reached, a message just sent is a
			// reason to try now, at most once per sendNudge.
			if !offline {
				return
			}
			if now.Sub(s.lastDial) < sendNudge || !p.hasUnreported() {
				p.reportQueued(ctx, s, s.lastErr)
				return
			}
		}
		s.lastDial = now
		c, err := p.dial(ctx, s.fails)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.fails++
			p.log.Warn("cannot reach friend", "err", err)
			p.mu.Lock()
			p.offline = true
			p.mu.Unlock()
			s.backoff = nextBackoff(s.backoff)
			s.retryAt = now.Add(s.backoff)
			retry.Reset(s.backoff)
			s.lastErr = &ReachError{Name: p.friend.Name, Addr: p.friend.Addr(), Err: err}
			p.reportQueued(ctx, s, s.lastErr)
			return
		}
		s.c, s.fails = c, 0
		p.setConnected(true)
		p.log.Info("client connection up")
		p.node.emit(ctx, PeerUp{Name: p.friend.Name, Addr: p.friend.Addr(), ID: c.id, TLSVersion: c.state.Version})
	}
	if s.sent > maxInFlight/2 {
		return // acks make room; then more goes out, in one large write
	}
	room := maxInFlight - s.sent
	p.mu.Lock()
	batch := slices.Clone(p.queue[s.sent:min(len(p.queue), s.sent+room)])
	lows := make([]uint64, len(batch))
	for i, m := range batch {
		lows[i] = p.low[m.stream]
	}
	p.mu.Unlock()
	if p.node.store.LastErr() != nil {
		// The store failed its last write: until it works again, nothing
		// goes out before it is recorded, so that a message the person is
		// told was not recorded was not sent either.
		if !p.sync(ctx, s, batch[len(batch)-1].record) {
			return
		}
	}
	now := time.Now()
	wasIdle := len(s.written) == 0
	if err := s.c.write(batch, lows); err != nil {
		p.log.Warn("write failed", "err", err)
		s.c.close()
		// The reader sees the closed connection and run drops it.
		return
	}
	s.sent += len(batch)
	for range batch {
		s.written = append(s.written, now)
	}
	if wasIdle {
		armAck()
	}
	p.touch()
	idle.Reset(p.node.cfg.IdleTimeout)
	// While the friend receives the batch, make it durable here.
	p.sync(ctx, s, batch[len(batch)-1].record)
}

// sync waits for the store's write rec, and so for every write handed to
// it before, and marks the messages whose writes are done durable. Those
// the store failed to record are taken off the queue and reported failed;
// false says there were some.
func (p *peer) sync(ctx context.Context, s *sender, rec *store.Pending) bool {
	if rec != nil {
		rec.Wait()
	}
	type failed struct {
		m       outgoing
		written bool
	}
	p.mu.Lock()
	var lost []failed
	kept := p.queue[:0]
	sent, written := s.sent, s.written[:0]
	for i, m := range p.queue {
		if !m.durable && m.record != nil {
			select {
			case <-m.record.Done():
				m.durable = m.record.Err() == nil
				if !m.durable {
					lost = append(lost, failed{m, i < s.sent})
					if i < s.sent {
						sent--
					}
					continue
				}
			default:
			}
		}
		kept = append(kept, m)
		if i < s.sent {
			written = append(written, s.written[i])
		}
	}
	clear(p.queue[len(kept):])
	p.queue = kept
	p.mu.Unlock()
	if len(lost) == 0 {
		return true
	}
	if sent < s.sent && s.c != nil {
		// Acks would no longer match the queue. What the friend got, it
		// keeps; run drops the connection.
		s.c.close()
	}
	s.sent, s.written = sent, written
	for _, f := range lost {
		p.node.emit(ctx, MessageFailed{To: p.friend.Name, Seq: f.m.seq, Text: f.m.text, Err: f.m.record.Err(), Written: f.written})
	}
	return false
}

func (p *peer) hasUnreported() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.queue {
		if !m.reported {
			return true
		}
	}
	return false
}

// reportQueued emits MessageQueued for each waiting message not yet
// reported, so the person hears once per message that it waits; it makes
// them durable first.
func (p *peer) reportQueued(ctx context.Context, s *sender, err error) {
	p.mu.Lock()
	var last *store.Pending
	if len(p.queue) > 0 {
		last = p.queue[len(p.queue)-1].record
	}
	p.mu.Unlock()
	if !p.sync(ctx, s, last) {
		return
	}
	p.mu.Lock()
	var news []outgoing
	for i := range p.queue {
		if !p.queue[i].reported {
			p.queue[i].reported = true
			news = append(news, p.queue[i])
		}
	}
	n := len(p.queue)
	p.mu.Unlock()
	for _, m := range news {
		p.node.emit(ctx, MessageQueued{To: p.friend.Name, Seq: m.seq, Text: m.text, Waiting: n, Err: err})
	}
}

func nextBackoff(d time.Duration) time.Duration {
	d = min(max(2*d, retryMin), retryMax)
	jitter := 1 + retryJitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * jitter)
}

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
func (p *peer) dial(ctx context.Context, fails int) (*clientConn, error) {
	d := net.Dialer{Timeout: grown(DialTimeout, fails)}
	raw, err := d.DialContext(ctx, "tcp", p.friend.Addr())
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	conn := tls.Client(raw, p.node.clientTLS(p.friend.Name))
	conn.SetDeadline(time.Now().Add(grown(p.node.cfg.HandshakeTimeout, fails)))
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
		err = wire.WriteFrame(c.bw, wire.Hello{Version: wire.Version, Name: p.node.self.Name})
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
			if f.Name != p.friend.Name {
				err = fmt.Errorf("it answered as %q, not %s", f.Name, p.friend.Name)
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

// RefusedError means the friend's instance refused our connection.
type RefusedError struct {
	Reason string // as the friend sent it: not to be printed unescaped
}

func (e *RefusedError) Error() string { return "refused: " + e.Reason }
