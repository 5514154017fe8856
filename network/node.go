package network

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"p2pchat/network/store"

	"p2pchat/network/wire"
)

// Timeouts. Each bounds a wait on the other side of a connection, so that a
// silent or slow peer costs at most this long.
const (
	// DefaultIdleTimeout closes a client connection after this long without
	// a message or an acknowledgement.
	DefaultIdleTimeout = 5 * time.Minute
	// DialTimeout bounds connecting to a friend.
	DialTimeout = 5 * time.Second
	// HandshakeTimeout bounds the hello and welcome exchange after connecting,
	// on both sides.
	HandshakeTimeout = 10 * time.Second
	// AckTimeout is how long a sent message may wait for its acknowledgement
	// before the connection is taken for dead.
	AckTimeout = 10 * time.Second
	// writeTimeout bounds every write, so a peer that does not read cannot
	// block us.
	writeTimeout = 10 * time.Second
)

// eventBuffer is how many events may wait for the shell before the network
// waits for it (a received message then stays unacknowledged, nothing is lost).
const eventBuffer = 256

// Config configures a Node.
type Config struct {
	// Name is this instance's own name; it must be in Table, and the node
	// listens on that row's address.
	Name  string
	Table *Table
	// IdleTimeout closes an outbound connection after this long without
	// activity; an inbound one after twice as long. Zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// HandshakeTimeout and AckTimeout override the defaults of the same
	// names when positive; tests shorten them.
	HandshakeTimeout time.Duration
	AckTimeout       time.Duration
	// Identity is this instance's key and certificate (see LoadIdentity).
	Identity *Identity
	// KnownPeers records identities pinned on first use; nil keeps them in
	// memory only.
	KnownPeers *KnownPeers
	// Store is the durable record of messages: the queue to each friend,
	// and what was received from each. Required.
	Store *store.DB
	// Logger receives connection-level log lines; nil discards them.
	Logger *slog.Logger
}

// Node is one person's instance on the network: the server friends connect
// to, and a client connection per friend, dialled on demand.
type Node struct {
	cfg    Config
	self   Friend
	ln     net.Listener
	log    *slog.Logger
	events chan Event
	peers  map[string]*peer
	known  *KnownPeers
	store  *store.DB
	tls    *tls.Config // server side
	admit  *admission

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu      sync.Mutex
	inbound map[string]int // friend name -> open inbound connections

	storeDown atomic.Bool // the store's last write failed, and StoreFailed was emitted
}

// Start listens on the address of cfg.Name in cfg.Table and serves until ctx
// is done or Close is called. An error from Start means nothing is running:
// typically the address is already in use.
func Start(ctx context.Context, cfg Config) (*Node, error) {
	if cfg.Table == nil {
		return nil, errors.New("no table of friends")
	}
	if cfg.Identity == nil {
		return nil, errors.New("no identity")
	}
	if cfg.Store == nil {
		return nil, errors.New("no store")
	}
	self, ok := cfg.Table.Lookup(cfg.Name)
	if !ok {
		return nil, fmt.Errorf("%w: %q is not in the table", ErrUnknownFriend, cfg.Name)
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = DefaultIdleTimeout
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = HandshakeTimeout
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = AckTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		cfg:     cfg,
		self:    self,
		log:     log,
		events:  make(chan Event, eventBuffer),
		peers:   make(map[string]*peer),
		known:   cfg.KnownPeers,
		store:   cfg.Store,
		admit:   newAdmission(),
		inbound: make(map[string]int),
	}
	if n.known == nil {
		n.known, _ = LoadKnownPeers("")
	}
	n.tls = n.serverTLS()
	for _, f := range cfg.Table.Friends() {
		if f.Name == self.Name {
			continue
		}
		p, err := newPeer(n, f)
		if err != nil {
			return nil, fmt.Errorf("cannot read the queue for %s: %w", f.Name, err)
		}
		n.peers[f.Name] = p
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", self.Addr())
	if err != nil {
		return nil, &ListenError{Name: self.Name, Addr: self.Addr(), Err: err}
	}
	n.ln = ln
	n.ctx, n.cancel = context.WithCancel(ctx)
	for _, p := range n.peers {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			p.run(n.ctx)
		}()
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.serve(n.ctx)
	}()
	context.AfterFunc(n.ctx, func() { ln.Close() })
	log.Info("listening", "name", self.Name, "addr", ln.Addr().String(), "id", cfg.Identity.ID.String())
	return n, nil
}

// Addr is the address the node listens on.
func (n *Node) Addr() net.Addr { return n.ln.Addr() }

// Name is this instance's own name.
func (n *Node) Name() string { return n.self.Name }

// Events is the stream of what happens on the network. The caller must keep
// reading it: when it is full, receiving stalls (without losing anything).
// It is closed by Close.
func (n *Node) Events() <-chan Event { return n.events }

// Close stops the node: the listener and every connection are closed and
// every goroutine has returned when Close returns. It is safe to call more
// than once.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.cancel()
		n.wg.Wait()
		for _, p := range n.peers {
			p.stop()
		}
		close(n.events)
		n.log.Info("stopped")
	})
	return nil
}

// Send queues text for the friend named to and returns its id (its
// sequence number for this friend) at once. The message goes out at once
// and is made durable while the friend receives it. MessageQueued reports
// it, durable, waiting for a friend who cannot be reached;
// MessageDelivered the friend's acknowledgement; MessageFailed a store
// that could not record it. An error means nothing was queued.
func (n *Node) Send(to, text string) (uint64, error) {
	if to == n.self.Name {
		return 0, ErrSelf
	}
	p, ok := n.peers[to]
	if !ok {
		return 0, fmt.Errorf("%w %q", ErrUnknownFriend, to)
	}
	if err := wire.CheckText(text); err != nil {
		return 0, err
	}
	if n.ctx.Err() != nil {
		return 0, net.ErrClosed
	}
	return p.send(text)
}

// PeerStatus is a snapshot of the connections with one friend.
type PeerStatus struct {
	Friend
	Connected bool          // a client connection to the friend is open
	Idle      time.Duration // for how long it has been idle, if open
	Inbound   int           // connections the friend has open to us
	Pending   int           // messages waiting: sent or queued, not yet acknowledged
	Offline   bool          // the last attempt to reach the friend failed
	ID        ID            // the identity pinned for the friend, if any
	Pinned    PinSource     // where that pin comes from
}

// Peers returns the status of every friend but ourselves, in table order.
func (n *Node) Peers() []PeerStatus {
	var out []PeerStatus
	for _, f := range n.cfg.Table.Friends() {
		p, ok := n.peers[f.Name]
		if !ok {
			continue
		}
		out = append(out, p.status())
	}
	n.mu.Lock()
	for i := range out {
		out[i].Inbound = n.inbound[out[i].Name]
	}
	n.mu.Unlock()
	for i := range out {
		out[i].ID, out[i].Pinned = n.pinned(out[i].Name)
	}
	return out
}

// emit hands ev to the shell, waiting for room unless the node is stopping.
func (n *Node) emit(ctx context.Context, ev Event) bool {
	select {
	case n.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// serve is the accept loop: one goroutine per inbound connection, a backoff
// on temporary errors, and a clean return once the listener is closed.
func (n *Node) serve(ctx context.Context) {
	var delay time.Duration
	for {
		conn, err := n.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			// Out of descriptors or similar: wait and try again.
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
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.serveConn(ctx, conn)
		}()
	}
}

// serveConn runs one inbound connection: TLS with the client's certificate
// checked, the hello, then messages, each acknowledged after it has been
// handed to the shell. serveConn closes conn.
func (n *Node) serveConn(ctx context.Context, raw net.Conn) {
	defer raw.Close()
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	addr := raw.RemoteAddr().String()
	log := n.log.With("remote", addr)
	for _, old := range n.admit.admit(raw) {
		log.Warn("too many unauthenticated connections: closing the oldest", "closed", old.RemoteAddr().String())
		old.Close()
	}

	conn := tls.Server(raw, n.tls)
	br := bufio.NewReaderSize(conn, 4096)
	bw := bufio.NewWriterSize(conn, 4096)
	buf := make([]byte, wire.MaxFrameSize)

	name, id, err := n.handshake(ctx, conn, br, bw, buf)
	if !n.admit.done(raw) && err == nil {
		err = errors.New("closed to make room for newer connections")
	}
	if err != nil {
		if ctx.Err() == nil {
			log.Warn("connection refused", "name", name, "err", err)
			n.emit(ctx, ConnRefused{Addr: addr, Name: name, Err: err})
		}
		return
	}
	log = log.With("peer", name)
	log.Info("inbound connection up")
	n.peers[name].kick() // they are reachable: whatever waits for them goes now
	n.mu.Lock()
	n.inbound[name]++
	n.mu.Unlock()
	n.emit(ctx, PeerUp{Name: name, Addr: addr, Inbound: true, ID: id, TLSVersion: conn.ConnectionState().Version})

	err = n.receive(ctx, conn, name, br, bw, buf)

	n.mu.Lock()
	n.inbound[name]--
	n.mu.Unlock()
	if ctx.Err() != nil {
		return
	}
	switch {
	case errors.Is(err, wire.ErrBadFrame), errors.Is(err, wire.ErrFrameTooLarge):
		log.Warn("protocol violation, connection closed", "err", err)
		n.emit(ctx, ConnRefused{Addr: addr, Name: name, Err: err})
		n.emit(ctx, PeerDown{Name: name, Addr: addr, Inbound: true, Err: err})
	case isTimeout(err):
		log.Info("inbound connection idle, closed")
		n.emit(ctx, PeerDown{Name: name, Addr: addr, Inbound: true, Err: ErrIdle})
	default:
		log.Info("inbound connection down", "err", err)
		n.emit(ctx, PeerDown{Name: name, Addr: addr, Inbound: true, Err: err})
	}
}

// handshake runs the TLS handshake (the client's certificate is checked in
// serverTLS), reads the hello and answers it with a welcome or a refuse, all
// within the handshake timeout. It returns the name the peer claimed, if it
// got that far, and its ID.
func (n *Node) handshake(ctx context.Context, conn *tls.Conn, br *bufio.Reader, bw *bufio.Writer, buf []byte) (string, ID, error) {
	conn.SetDeadline(time.Now().Add(n.cfg.HandshakeTimeout))
	if err := conn.HandshakeContext(ctx); err != nil {
		var idErr *IdentityError
		switch {
		case errors.As(err, &idErr):
			return idErr.Name, ID{}, idErr
		case isTimeout(err):
			return "", ID{}, fmt.Errorf("no TLS handshake within %v", n.cfg.HandshakeTimeout)
		}
		return "", ID{}, &handshakeError{err}
	}
	cert := conn.ConnectionState().PeerCertificates[0]
	id := CertID(cert.Raw)
	f, err := wire.ReadFrame(br, buf)
	if err != nil {
		if isTimeout(err) {
			return "", id, fmt.Errorf("no hello within %v", n.cfg.HandshakeTimeout)
		}
		return "", id, fmt.Errorf("bad hello: %w", err)
	}
	h, ok := f.(wire.Hello)
	if !ok {
		return "", id, fmt.Errorf("%w: expected a hello, got frame type %d", wire.ErrBadFrame, f.Type())
	}
	refuseWith := func(err error) (string, ID, error) {
		conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		wire.WriteFrame(bw, wire.Refuse{Reason: err.Error()})
		bw.Flush()
		return h.Name, id, err
	}
	if h.Version != wire.Version {
		return refuseWith(fmt.Errorf("%w: protocol version %d is not spoken here (%s runs a p2pchat that speaks %d)", ErrUpgrade, h.Version, n.self.Name, wire.Version))
	}
	if h.Name == n.self.Name {
		return refuseWith(fmt.Errorf("hello claims to be %s, which is this instance", h.Name))
	}
	if _, ok := n.peers[h.Name]; !ok {
		return refuseWith(fmt.Errorf("%w %q: not in %s's table", ErrUnknownFriend, h.Name, n.self.Name))
	}
	if err := n.checkCert(h.Name, cert); err != nil {
		return refuseWith(err)
	}
	if pinned, err := n.pinFirstUse(h.Name, id); err != nil {
		return refuseWith(err)
	} else if pinned {
		n.log.Warn("identity pinned on first use", "peer", h.Name, "id", id.String())
		n.emit(ctx, IdentityPinned{Name: h.Name, Addr: conn.RemoteAddr().String(), ID: id})
	}
	if err := wire.WriteFrame(bw, wire.Welcome{Version: wire.Version, Name: n.self.Name}); err != nil {
		return h.Name, id, err
	}
	if err := bw.Flush(); err != nil {
		return h.Name, id, err
	}
	conn.SetDeadline(time.Time{})
	return h.Name, id, nil
}

// maxReceiveBatch bounds the messages recorded in one go from one connection.
const maxReceiveBatch = 1024

// receive reads messages from a friend until the connection ends. A reader
// goroutine decodes frames while this one records: whatever arrived during
// one commit is taken together into the next. The new messages (by
// sequence number) are recorded durably, then handed to the shell, and then
// all of them, duplicates included, are acknowledged in one write.
func (n *Node) receive(ctx context.Context, conn *tls.Conn, from string, br *bufio.Reader, bw *bufio.Writer, buf []byte) error {
	p := n.peers[from]
	silence := 2 * n.cfg.IdleTimeout
	// Pointers, so that a thousand idle friends cost 8 KB each here.
	msgs := make(chan *wire.Message, maxReceiveBatch)
	var readErr error
	stop := make(chan struct{})
	defer close(stop)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer close(msgs)
		for {
			conn.SetReadDeadline(time.Now().Add(silence))
			f, err := wire.ReadFrame(br, buf)
			if err != nil {
				readErr = err
				return
			}
			m, ok := f.(wire.Message)
			if !ok {
				readErr = fmt.Errorf("%w: expected a message, got frame type %d", wire.ErrBadFrame, f.Type())
				return
			}
			idle := len(msgs) == 0
			select {
			case msgs <- &m:
			case <-stop:
				return
			}
			if idle && br.Buffered() == 0 {
				// A message alone: let it be recorded now, not once
				// this goroutine blocks reading the next. With the
				// hints here, below and in shell/plain.go,
				// BenchmarkWarmLatency's p50 is 1.33-1.44 times the
				// durable relay's; without them, 1.52-1.55.
				runtime.Gosched()
			}
		}
	}()
	var batch []wire.Message
	for {
		m, ok := <-msgs
		if !ok {
			return readErr // set before msgs was closed
		}
		batch = append(batch[:0], *m)
	drain:
		for len(batch) < maxReceiveBatch {
			select {
			case m, ok := <-msgs:
				if !ok {
					break drain // record and ack what came; the next receive reports the end
				}
				batch = append(batch, *m)
			default:
				break drain
			}
		}
		if err := p.receive(ctx, batch); err != nil {
			return err
		}
		conn.SetWriteDeadline(time.Now().Add(writeTimeout))
		for _, m := range batch {
			if err := wire.WriteFrame(bw, wire.Ack{Stream: m.Stream, Seq: m.Seq}); err != nil {
				return err
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
	}
}

// receive records and hands on the messages of batch that are new, in
// order. A message is new if its sequence number is above the last one
// received in its stream; one at or below is a duplicate (a retry after a
// lost ack) and is only acknowledged. One that jumps more than wire.MaxSeqJump
// past it is malformed. Connections from the same friend take turns here.
func (p *peer) receive(ctx context.Context, batch []wire.Message) error {
	select {
	case <-p.replayed:
	case <-ctx.Done():
		return ctx.Err()
	}
	p.recvMu.Lock()
	defer p.recvMu.Unlock()
	var fresh []store.In
	seen := make(map[wire.StreamID]uint64)
	for _, m := range batch {
		last, ok := seen[m.Stream]
		if !ok {
			var err error
			if last, err = p.received(m.Stream); err != nil {
				return err
			}
		}
		if m.Seq <= last {
			continue
		}
		if m.Seq-last > wire.MaxSeqJump {
			return fmt.Errorf("%w: message %d in a stream at %d", wire.ErrBadFrame, m.Seq, last)
		}
		seen[m.Stream] = m.Seq
		fresh = append(fresh, store.In{Stream: m.Stream, Seq: m.Seq, Text: m.Text, Sent: m.Sent})
	}
	if len(fresh) == 0 {
		return nil
	}
	if err := p.node.store.AddIn(p.friend.Name, fresh).Wait(); err != nil {
		p.node.storeFailed(ctx, err)
		return err // not acknowledged: the friend sends it again
	}
	p.node.storeWorked(ctx)
	for s, seq := range seen {
		p.lastIn[s] = seq
	}
	for _, m := range fresh {
		if !p.node.emit(ctx, MessageReceived{From: p.friend.Name, Seq: m.Seq, Sent: m.Sent, Text: m.Text, row: m.Row}) {
			return ctx.Err()
		}
	}
	// Let the shell show them now rather than once the acks are written:
	// the shell's goroutine was readied on this thread and would wait
	// (BenchmarkWarmLatency: see the hint in receive).
	runtime.Gosched()
	return nil
}

// received returns the last sequence number received in stream, from
// memory or the store. recvMu is held.
func (p *peer) received(stream wire.StreamID) (uint64, error) {
	if last, ok := p.lastIn[stream]; ok {
		return last, nil
	}
	last, err := p.node.store.Received(p.friend.Name, stream)
	if err == nil {
		p.lastIn[stream] = last
	}
	return last, err
}

// MarkShown records that m, and the messages from its sender before it,
// have been shown to the person. The shell calls it right after showing a
// MessageReceived; a message received but never marked shown (the process
// died in between) is reported again at the next start.
func (n *Node) MarkShown(m MessageReceived) {
	if m.row == 0 {
		return
	}
	if err := n.store.MarkShown(m.From, m.row); err != nil {
		n.log.Error("cannot record a message as shown", "peer", m.From, "err", err)
	}
}

// History returns the last n messages exchanged with friend, both ways,
// oldest first, in the order they were recorded here.
func (n *Node) History(friend string, max int) ([]HistoryEntry, error) {
	if _, ok := n.peers[friend]; !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownFriend, friend)
	}
	ms, err := n.store.History(friend, max)
	if err != nil {
		return nil, err
	}
	out := make([]HistoryEntry, len(ms))
	for i, m := range ms {
		out[i] = HistoryEntry{Outgoing: m.Outgoing, Text: m.Text, Sent: m.Sent, At: m.At, Delivered: m.Outgoing && m.Done}
	}
	return out, nil
}

// HistoryEntry is one message of the history with a friend.
type HistoryEntry struct {
	Outgoing  bool      // sent by us
	Text      string    // as sent: may hold any characters
	Sent      time.Time // the sender's clock when it was written
	At        time.Time // when it was recorded here
	Delivered bool      // sent: the friend acknowledged it
}

// storeFailed reports that the store failed a write, once until it works
// again.
func (n *Node) storeFailed(ctx context.Context, err error) {
	if n.storeDown.Swap(true) {
		return
	}
	n.log.Error("the message database failed a write", "err", err)
	n.emit(ctx, StoreFailed{Err: err})
}

// storeWorked reports that the store writes again, if it had failed.
func (n *Node) storeWorked(ctx context.Context) {
	if n.storeDown.Swap(false) {
		n.log.Info("the message database writes again")
		n.emit(ctx, StoreRecovered{})
	}
}

// handshakeError is a failed TLS handshake on an inbound connection.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string {
	if certRejected(e.err) {
		return "it gave up: " + reason(e.err)
	}
	return "TLS handshake failed: " + reason(e.err)
}

// CertRejected reports whether the other side ended the TLS handshake
// because it does not accept our certificate: a problem with us in its
// eyes, not an attack on us.
func (e *handshakeError) CertRejected() bool { return certRejected(e.err) }
func (e *handshakeError) Unwrap() error      { return e.err }

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Friends returns the names of everyone this node can write to, in table
// order.
func (n *Node) Friends() []string {
	var out []string
	for _, f := range n.cfg.Table.Friends() {
		if _, ok := n.peers[f.Name]; ok {
			out = append(out, f.Name)
		}
	}
	return out
}
