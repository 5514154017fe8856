package network

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"p2pchat/network/internal/store"

	"p2pchat/network/wire"

	"p2pchat/network/trust"
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
	// and what was received from each (see OpenStore). Required.
	Store *Store
	// ReceiveLimit bounds what one friend may cost on disk: the bytes of
	// text received from them within ReceiveWindow. Past it, nothing more
	// is read from them until the window has room. Zero means
	// DefaultReceiveLimit and DefaultReceiveWindow; tests make them small.
	ReceiveLimit  int64
	ReceiveWindow time.Duration
	// Logger receives connection-level log lines; nil discards them.
	Logger *slog.Logger

	// NoCarry refuses to carry mail for others (see carry.go); this
	// instance's own mail is still carried by friends who do.
	NoCarry bool
	// CarryBudget bounds what one friend may have carried here; zero means
	// DefaultCarryBudget. CarryTTL is how long a copy is carried; zero
	// means the constant. HoldTimeout is how long a carried message that
	// came ahead of an earlier one waits for it before it is shown; zero
	// means the constant. Tests shorten them.
	CarryBudget CarryBudget
	CarryTTL    time.Duration
	HoldTimeout time.Duration
}

// Node is one person's instance on the network: the server friends connect
// to, and a client connection per friend, dialled on demand.
type Node struct {
	cfg      Config
	self     Friend
	ln       net.Listener
	log      *slog.Logger
	events   chan Event
	outboxes map[string]*outbox // by friend
	inboxes  map[string]*inbox
	known    *KnownPeers
	pins     *trust.Pins
	store    *store.DB
	tls      *tls.Config // server side
	admit    *admission
	presence *presence

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu      sync.Mutex
	inbound map[string]map[*serverConn]struct{} // by friend: the open inbound connections

	cards           cards
	probing         atomic.Bool // a probe went out (reach.go)
	reachKnown      atomic.Bool // and its answer came
	behindNAT       atomic.Bool // the answer said we cannot be reached
	keepOnce        sync.Once
	health          storeHealth
	refusalsDropped atomic.Int64 // ConnRefused events dropped while the shell lagged
}

// inboundConn returns the friend's newest connection to us that is open,
// or nil.
func (n *Node) inboundConn(friend string) *conn {
	n.mu.Lock()
	defer n.mu.Unlock()
	var newest *serverConn
	for c := range n.inbound[friend] {
		if c.forgotten.Load() {
			continue
		}
		if newest == nil || c.since.After(newest.since) {
			newest = c
		}
	}
	if newest == nil {
		return nil
	}
	select {
	case <-newest.link.done:
		return nil
	default:
		return newest.link
	}
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
	if cfg.ReceiveLimit <= 0 {
		cfg.ReceiveLimit = DefaultReceiveLimit
	}
	if cfg.ReceiveWindow <= 0 {
		cfg.ReceiveWindow = DefaultReceiveWindow
	}
	if cfg.HoldTimeout <= 0 {
		cfg.HoldTimeout = HoldTimeout
	}
	if cfg.CarryBudget == (CarryBudget{}) {
		cfg.CarryBudget = DefaultCarryBudget
	}
	if cfg.CarryTTL <= 0 {
		cfg.CarryTTL = CarryTTL
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &Node{
		cfg:      cfg,
		self:     self,
		log:      log,
		events:   make(chan Event, eventBuffer),
		outboxes: make(map[string]*outbox),
		inboxes:  make(map[string]*inbox),
		known:    cfg.KnownPeers,
		store:    cfg.Store.db,
		admit:    newAdmission(),
		inbound:  make(map[string]map[*serverConn]struct{}),
	}
	if n.known == nil {
		n.known, _ = LoadKnownPeers("")
	}
	n.health = storeHealth{log: log, emit: n.emit}
	last, err := n.store.LastSeen()
	if err != nil {
		return nil, err
	}
	n.presence = newPresence(last, func(friend string, at time.Time) { n.store.SetLastSeen(friend, at) })
	n.pins = trust.NewPins(cfg.Identity, func(name string) (ID, bool) {
		f, ok := cfg.Table.Lookup(name)
		return f.ID, ok
	}, n.known)
	n.tls = n.pins.ServerConfig(func(name string) bool { _, ok := n.outboxes[name]; return ok })
	n.tls.GetConfigForClient = sawClientHello // admission's view of the handshake
	n.ctx, n.cancel = context.WithCancel(ctx)
	for _, f := range cfg.Table.Friends() {
		if f.Name == self.Name {
			continue
		}
		o, err := newOutbox(n, f)
		if err != nil {
			n.cancel()
			return nil, fmt.Errorf("cannot read the queue for %s: %w", f.Name, err)
		}
		n.outboxes[f.Name] = o
		n.inboxes[f.Name] = newInbox(n, f)
	}
	if err := n.loadCards(); err != nil {
		n.cancel()
		return nil, fmt.Errorf("cannot read the cards of friends: %w", err)
	}
	if err := n.loadCarried(); err != nil {
		n.cancel()
		return nil, fmt.Errorf("cannot read the mail carried for friends: %w", err)
	}
	listenAddr := self.Addr()
	if self.Host == NoHost {
		listenAddr = net.JoinHostPort("", strconv.Itoa(self.Port))
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", listenAddr)
	if err != nil {
		n.cancel()
		return nil, &ListenError{Name: self.Name, Addr: self.Addr(), Err: err}
	}
	n.ln = ln
	n.store.ForgetUsage(time.Now().Add(-cfg.ReceiveWindow)) // out of every window
	// Whom to say we are back to is decided now, before any friend can
	// connect: a card handed on later pins a friend, but we have not
	// talked with them.
	for _, o := range n.outboxes {
		n.announceTo(o)
	}
	for name, o := range n.outboxes {
		in := n.inboxes[name]
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			in.replay(n.ctx)
			o.run(n.ctx)
		}()
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.serve(n.ctx)
	}()
	if self.Host == NoHost {
		n.startKeepAlive()
	}
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
		for _, o := range n.outboxes {
			o.stop()
		}
		n.presence.flush()
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
	o, ok := n.outboxes[to]
	if !ok {
		return 0, fmt.Errorf("%w %q", ErrUnknownFriend, to)
	}
	if err := wire.CheckText(text); err != nil {
		return 0, err
	}
	if n.ctx.Err() != nil {
		return 0, ErrClosed
	}
	return o.send(text)
}

// FriendStatus is a snapshot of the connections with one friend.
type FriendStatus struct {
	Friend
	Connected bool          // a client connection to the friend is open
	Idle      time.Duration // for how long it has been idle, if open
	Inbound   int           // connections the friend has open to us
	Pending   int           // messages waiting: sent or queued, not yet acknowledged
	Offline   bool          // the last attempt to reach the friend failed
	Online    bool          // a connection with the friend is open, either way, or was used in the last 5 minutes
	LastSeen  time.Time     // the last connection or frame from the friend, now while one is open; zero if never
	ID        ID            // the identity pinned for the friend, if any
	Pinned    PinSource     // where that pin comes from
	// CarriedBy names the friends who hold sealed copies of messages
	// waiting for this one; Carrying counts the copies this instance
	// carries for this friend from others.
	CarriedBy []string
	Carrying  int
	// Card says a card of the friend is held, so what waits for them can
	// be sealed and carried; Reachable, that the card says they accept
	// connections.
	Card, Reachable bool
}

// Status returns the status of every friend but ourselves, in table order.
func (n *Node) Status() []FriendStatus {
	var out []FriendStatus
	for _, f := range n.cfg.Table.Friends() {
		o, ok := n.outboxes[f.Name]
		if !ok {
			continue
		}
		out = append(out, o.status())
	}
	n.mu.Lock()
	for i := range out {
		out[i].Inbound = len(n.inbound[out[i].Name])
	}
	n.mu.Unlock()
	counts, _ := n.store.CarriedCounts()
	for i := range out {
		out[i].ID, out[i].Pinned = n.pins.Pinned(out[i].Name)
		out[i].Online, out[i].LastSeen = n.presence.status(out[i].Name)
		out[i].Carrying = counts[out[i].Name]
		if c, ok := n.contact(out[i].Name); ok {
			out[i].Card, out[i].Reachable = true, c.Reachable
		}
	}
	return out
}

// emit hands ev to the shell, waiting for room unless the node is stopping.
//
// Status events (ConnUp, ConnDown, ConnRefused) never wait: while the shell
// lags they are dropped, so that a flood of refused connections cannot hold
// a goroutine each; the next ConnRefused that goes out counts the
// refusals dropped before it. Everything else waits for room: a message is
// never dropped, and while the shell lags, receiving waits too.
func (n *Node) emit(ctx context.Context, ev Event) bool {
	n.presence.saw(ev)
	switch e := ev.(type) {
	case ConnUp, ConnDown:
		select {
		case n.events <- ev:
		default:
		}
		return ctx.Err() == nil
	case ConnRefused:
		e.Dropped = int(n.refusalsDropped.Swap(0))
		select {
		case n.events <- e:
		default:
			n.refusalsDropped.Add(int64(1 + e.Dropped))
		}
		return ctx.Err() == nil
	}
	select {
	case n.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}

// emitSoon hands ev to the shell from a goroutine of its own: for an
// event that must not be dropped but comes in the middle of a handshake or
// of reading a connection, which must not wait for a shell that lags.
func (n *Node) emitSoon(ev Event) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.emit(n.ctx, ev)
	}()
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
	if _, ok := n.outboxes[friend]; !ok {
		return nil, fmt.Errorf("%w %q", ErrUnknownFriend, friend)
	}
	ms, err := n.store.History(friend, max)
	if err != nil {
		return nil, err
	}
	o := n.outboxes[friend]
	out := make([]HistoryEntry, len(ms))
	for i, m := range ms {
		e := HistoryEntry{Outgoing: m.Outgoing, Group: m.Group, Text: m.Text, Sent: m.Sent, At: m.At, Delivered: m.Outgoing && m.Done}
		if m.Outgoing && !m.Done {
			// The store's mark says delivered in order; a receipt that a
			// carrier brought may have delivered it out of order.
			waits, carriers := o.waits(m.Stream, m.Seq)
			e.Delivered, e.CarriedBy = !waits, carriers
		}
		out[i] = e
	}
	return out, nil
}

// HistoryEntry is one message of the history with a friend.
type HistoryEntry struct {
	Outgoing  bool      // sent by us
	Group     string    // the group it was written to, without '@'; "" for one friend
	Text      string    // as sent: may hold any characters
	Sent      time.Time // the sender's clock when it was written
	At        time.Time // when it was recorded here
	Delivered bool      // sent: the friend acknowledged it
	CarriedBy []string  // sent, not yet delivered: the friends who carry a sealed copy
}

// Friends returns the names of everyone this node can write to, in table
// order.
func (n *Node) Friends() []string {
	var out []string
	for _, f := range n.cfg.Table.Friends() {
		if _, ok := n.outboxes[f.Name]; ok {
			out = append(out, f.Name)
		}
	}
	return out
}

// storeHealth reports the store failing to record messages received, once,
// and its recovery.
type storeHealth struct {
	down atomic.Bool // the store's last write failed, and StoreFailed was emitted
	log  *slog.Logger
	emit func(context.Context, Event) bool
}

// failed reports that the store failed a write, once until it works again.
func (h *storeHealth) failed(ctx context.Context, err error) {
	if h.down.Swap(true) {
		return
	}
	h.log.Error("the message database failed a write", "err", err)
	h.emit(ctx, StoreFailed{Err: err})
}

// worked reports that the store writes again, if it had failed.
func (h *storeHealth) worked(ctx context.Context) {
	if h.down.Swap(false) {
		h.log.Info("the message database writes again")
		h.emit(ctx, StoreRecovered{})
	}
}

// Store is the message database in a data directory: the queue to each
// friend, the history, what was shown. One process at a time has it open.
type Store struct{ db *store.DB }

// Errors of OpenStore, for errors.Is.
var (
	// ErrLocked means another p2pchat has the data directory open.
	ErrLocked = store.ErrLocked
	// ErrNoSpace means the disk is full.
	ErrNoSpace = store.ErrNoSpace
	// ErrDamaged means the database file is not usable.
	ErrDamaged = store.ErrDamaged
)

// OpenStore opens the message database in dir, creating it, or moving a
// p2pchat 0.1 store into it, as needed.
func OpenStore(dir string) (*Store, error) {
	db, err := store.Open(dir)
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close makes every write durable and closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Path is the database file.
func (s *Store) Path() string { return s.db.Path() }

// Fresh reports whether the database was created by OpenStore.
func (s *Store) Fresh() bool { return s.db.Fresh() }

// Upgraded returns how many messages OpenStore moved from a p2pchat 0.1
// store.
func (s *Store) Upgraded() int { return s.db.Upgraded() }

// LastErr is the error of the last write, or nil if it succeeded.
func (s *Store) LastErr() error { return s.db.LastErr() }

// CheckStore runs SQLite's integrity check on the database in dir, read
// only, and returns what it found: "ok", or the problems.
func CheckStore(dir string) (string, error) { return store.Check(dir) }

// StoreFileName is the database's name in a data directory.
const StoreFileName = store.FileName
