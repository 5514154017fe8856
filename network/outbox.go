package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"p2pchat/network/internal/store"
	"p2pchat/network/wire"
)

// outgoing is a message on its way to a friend.
type outgoing struct {
	row      int64 // its row in the store
	stream   wire.StreamID
	seq      uint64
	group    string     // the group it is a copy for, if any
	gs       *groupSend // reports it with the other copies; nil if not sent in this run
	text     string
	created  time.Time
	record   *store.Pending // its write to the store
	durable  bool           // the write is done
	reported bool           // a MessageQueued event was emitted for it

	// Carried copies (carry.go): the carriers it was handed to, those
	// that refused it, those that hold it, and the one whose receipt
	// came while it was on the connection too.
	handed, refused map[string]bool
	carriedBy       []string
	via             string
}

// Backoff between attempts to reach a friend who cannot be reached: from
// retryMin, doubling to retryMax, each wait randomised by ±retryJitter.
const (
	retryMin    = 250 * time.Millisecond
	retryMax    = 10 * time.Second
	retryJitter = 0.2
	// retryOnSend is the shortest time between two attempts made because
	// the person sent a new message while the friend was offline.
	retryOnSend = time.Second
	// retryOnReach is the shortest time between two attempts made because
	// the friend connected to us: a storm of their connections must not
	// become a storm of our dials.
	retryOnReach = time.Second
	// maxInFlight bounds the messages written and not yet acknowledged,
	// and so the memory that tracks them; more goes out as acks come back.
	maxInFlight = 1 << 16
	// writeChunk is how many messages go out under one write deadline.
	writeChunk = 1024
)

// outbox owns everything outbound to one friend: the durable queue, the
// lazily dialled client connection, its timers, acks and retries. Its
// goroutine, run, does the work; mu guards what Send and Status read and
// change from other goroutines.
type outbox struct {
	friend                  Friend
	store                   *store.DB
	emit                    func(context.Context, Event) bool
	dial                    func(ctx context.Context, fails int) (*conn, error)
	inbound                 func() *conn // the friend's newest open connection to us, or nil
	log                     *slog.Logger
	idleTimeout, ackTimeout time.Duration

	wakeup chan struct{} // something changed: look again

	mu         sync.Mutex
	queue      []outgoing               // sent by the person, not yet acknowledged, in order
	low        map[wire.StreamID]uint64 // per stream, everything up to this was acknowledged
	closed     bool                     // the node stopped
	connected  bool
	lastActive time.Time
	offline    bool          // the last attempt to reach the friend failed
	reachable  bool          // the friend reached us: try again at once
	forget     bool          // the friend's identity was forgotten: drop the connection
	receipts   []receiptNote // the friend's receipts, for run to take
	keep       bool          // keep a connection open, idle or not (keepalive.go)

	// Mail frames waiting on the connection with this friend (carry.go),
	// and the connection run has open, for others to find.
	mail         mailQueue
	live         atomic.Pointer[conn]
	handOff      func(ctx context.Context)       // hands sealed copies to carriers
	sendersCards func([]wire.Frame) []wire.Frame // the cards that go before carried mail

	// The rest belongs to run.
	c        *conn       // nil when not connected
	borrowed bool        // c is the friend's connection to us, not ours
	sent     int         // queue[:sent] is written on c, awaiting acks
	written  []time.Time // when each of those was written
	fails    int         // attempts in a row that failed to reach the friend
	lastErr  error       // why the friend could not be reached, last time
	backoff  time.Duration
	retryAt  time.Time // no dial before this, unless a send says to try
	lastDial time.Time
	lastKick time.Time   // the last attempt made because the friend reached us
	announce bool        // dial once with nothing to send, to say we are back (announce.go)
	hello    *conn       // c, while it is that connection and has carried nothing of ours
	idle     *time.Timer // the connection has been idle for idleTimeout
	ackDue   *time.Timer // the oldest message written waits ackTimeout
	retry    *time.Timer // the backoff is over
	acked    int64       // the last row acknowledged, to mark in the store
	noCarry  error       // why nobody carries for the friend, last said
}

// newOutbox loads the friend's queue from the store.
func newOutbox(n *Node, f Friend) (*outbox, error) {
	o := &outbox{
		friend:      f,
		store:       n.store,
		emit:        n.emit,
		log:         n.log.With("friend", f.Name, "addr", f.Addr()),
		idleTimeout: n.cfg.IdleTimeout,
		ackTimeout:  n.cfg.AckTimeout,
		wakeup:      make(chan struct{}, 1),
		low:         make(map[wire.StreamID]uint64),
	}
	o.dial = func(ctx context.Context, fails int) (*conn, error) { return n.dial(ctx, f, fails, o.log) }
	o.inbound = func() *conn { return n.inboundConn(f.Name) }
	o.handOff = func(ctx context.Context) { n.handOff(ctx, o) }
	o.sendersCards = n.sendersCards
	queued, err := n.store.Queue(f.Name)
	if err != nil {
		return nil, err
	}
	for _, r := range queued {
		// Waiting since an earlier run: the person was told then, and hears
		// of the delivery when it comes.
		o.queue = append(o.queue, outgoing{row: r.Row, stream: r.Stream, seq: r.Seq, group: r.Group, text: r.Text, created: r.Sent, durable: true, reported: true})
		if _, ok := o.low[r.Stream]; !ok {
			o.low[r.Stream] = r.Seq - 1
		}
	}
	if len(o.queue) > 0 {
		o.wake()
	}
	return o, nil
}

// wake makes run look again at what waits.
func (o *outbox) wake() {
	select {
	case o.wakeup <- struct{}{}:
	default:
	}
}

// reached is called when the friend connects to us: they are reachable,
// so whatever waits goes out now.
func (o *outbox) reached() {
	o.mu.Lock()
	o.reachable = true
	o.mu.Unlock()
	o.wake()
}

// forgotten is called when the friend's identity is forgotten: run drops
// the connection made with it, and tries again at once.
func (o *outbox) forgotten() {
	o.mu.Lock()
	o.forget, o.reachable = true, true
	o.mu.Unlock()
	o.wake()
}

// send queues text for the friend under the next sequence number of this
// run's stream, and hands it to the store; run puts it on the wire at once
// and waits for the store while the friend receives it. It returns the
// sequence number.
func (o *outbox) send(text string) (uint64, error) {
	return o.sendCopy(text, nil)
}

// sendCopy is send for the friend's copy of a group message, gs, if not
// nil; it reports the copy with the others.
func (o *outbox) sendCopy(text string, gs *groupSend) (uint64, error) {
	now := time.Now()
	group := ""
	if gs != nil {
		now, group = gs.sent, gs.group
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, ErrClosed
	}
	var first int64
	if gs != nil {
		first = gs.first
	}
	out, rec := o.store.AddGroupOut(o.friend.Name, group, text, now, first)
	if gs != nil && first == 0 {
		gs.first = out.Row
	}
	o.queue = append(o.queue, outgoing{row: out.Row, stream: out.Stream, seq: out.Seq, group: group, gs: gs, text: text, created: now, record: rec})
	o.wake()
	return out.Seq, nil
}

// stop makes later sends fail, once run has returned.
func (o *outbox) stop() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.closed = true
}

func (o *outbox) isOffline() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.offline
}

func (o *outbox) status() FriendStatus {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := FriendStatus{Friend: o.friend, Connected: o.connected, Pending: len(o.queue), Offline: o.offline}
	for _, m := range o.queue {
		for _, c := range m.carriedBy {
			if !slices.Contains(s.CarriedBy, c) {
				s.CarriedBy = append(s.CarriedBy, c)
			}
		}
	}
	if o.connected {
		s.Idle = time.Since(o.lastActive).Truncate(time.Second)
	}
	return s
}

func (o *outbox) setConnected(up bool) {
	o.mu.Lock()
	o.connected = up
	o.lastActive = time.Now()
	o.mu.Unlock()
}

func (o *outbox) touch() {
	o.mu.Lock()
	o.lastActive = time.Now()
	o.mu.Unlock()
}

// run is the outbox's only goroutine. It dials when something waits and no
// connection is open, writes everything that waits, matches acks, and
// closes the connection when it has been idle for the idle timeout. A
// connection that breaks, or leaves a message unacknowledged for the ack
// timeout, is dropped and everything unacknowledged goes out again on the
// next one; the receiver recognises what it already has.
func (o *outbox) run(ctx context.Context) {
	o.idle = stoppedTimer()
	o.ackDue = stoppedTimer()
	o.retry = stoppedTimer()
	for {
		var acks, done <-chan struct{}
		if o.c != nil {
			acks, done = o.c.ackReady, o.c.done
		}
		select {
		case <-ctx.Done():
			if o.c != nil {
				o.c.closeAndWait()
			}
			return

		case <-o.wakeup:
		case <-o.retry.C:

		case <-acks:
			for _, a := range o.c.takeAcks() {
				if err := o.onAck(ctx, a); err != nil {
					o.drop(ctx, err)
					break
				}
			}
			o.markDelivered()

		case <-done:
			// Acks read before the end still count.
			err := o.c.err
			for _, a := range o.c.takeAcks() {
				if ackErr := o.onAck(ctx, a); ackErr != nil {
					err = ackErr
					break
				}
			}
			o.markDelivered()
			o.drop(ctx, err)

		case <-o.idle.C:
			if o.sent > 0 {
				o.idle.Reset(o.idleTimeout) // waiting for acks is not idleness
				continue
			}
			if o.kept() {
				o.idle.Reset(o.idleTimeout)
				continue
			}
			if idle := o.c.idleFor(); idle < o.idleTimeout {
				// The friend's messages to us count as activity.
				o.idle.Reset(o.idleTimeout - idle)
				continue
			}
			o.drop(ctx, ErrIdle)

		case <-o.ackDue.C:
			if len(o.written) > 0 && time.Since(o.written[0]) >= o.ackTimeout {
				o.drop(ctx, fmt.Errorf("%w within %v: connection taken for dead", ErrNoAck, o.ackTimeout))
			} else {
				o.armAck()
			}
		}
		o.mu.Lock()
		forget := o.forget
		o.forget = false
		o.mu.Unlock()
		if forget && o.c != nil {
			o.drop(ctx, ErrForgotten)
		}
		o.takeReceipts(ctx)
		o.pump(ctx)
	}
}

// errNotRecorded ends a connection on which a message went out that the
// store then failed to record.
var errNotRecorded = errors.New("closed: a message sent on it could not be recorded here")

func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// drop closes the connection after err, and backs off unless it was idle.
// A connection that ended before the friend's welcome was an attempt to
// reach the friend that failed, and counts as one. The friend's own
// connection to us, when it was borrowed, is left to the friend to close
// when it is only idle here; the serverConn reports its end.
func (o *outbox) drop(ctx context.Context, err error) {
	borrowed := o.borrowed
	if !borrowed || !errors.Is(err, ErrIdle) {
		o.c.closeAndWait()
	}
	// One we closed ourselves was not an attempt to reach the friend that
	// failed, welcomed or not.
	welcomed := o.c.welcomed || borrowed || o.c.closedFor.Load() != nil
	o.c, o.sent, o.written, o.borrowed = nil, 0, nil, false
	o.live.Store(nil)
	o.idle.Stop()
	o.ackDue.Stop()
	o.setConnected(false)
	if borrowed {
		// The friend's connection ended: that says nothing of whether we
		// can reach them, so no backoff; the next connection of theirs is
		// taken at once (connect).
		o.log.Info("stopped sending on the friend's connection", "reason", err)
		return
	}
	if !welcomed {
		o.unreachable(ctx, time.Now(), err)
		o.emit(ctx, ConnDown{Friend: o.friend.Name, Addr: o.friend.Addr(), Err: err})
		return
	}
	if errors.Is(err, ErrIdle) {
		o.log.Info("client connection closed", "reason", "idle")
	} else {
		// Not at once again: a friend that keeps accepting and dropping
		// us must not have us spin. A delivery resets this.
		o.backoff = nextBackoff(o.backoff)
		o.retryAt = time.Now().Add(o.backoff)
		o.retry.Reset(o.backoff)
		o.log.Warn("client connection lost", "err", err, "retry_in", o.backoff)
	}
	o.emit(ctx, ConnDown{Friend: o.friend.Name, Addr: o.friend.Addr(), Err: err})
}

// armAck sets ackDue for the oldest message written and not acknowledged.
func (o *outbox) armAck() {
	if len(o.written) == 0 {
		o.ackDue.Stop()
		return
	}
	o.ackDue.Reset(time.Until(o.written[0].Add(o.ackTimeout)))
}

// onAck takes the friend's acknowledgement a, which must be of the oldest
// message written.
func (o *outbox) onAck(ctx context.Context, a wire.Ack) error {
	o.mu.Lock()
	ok := o.sent > 0 && o.queue[0].seq == a.Seq && o.queue[0].stream == a.Stream
	var m outgoing
	if ok {
		m = o.queue[0]
		o.queue = o.queue[1:]
		o.offline = false
		o.low[m.stream] = m.seq
	}
	o.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: ack for message %d, which is not the oldest unacknowledged", wire.ErrBadFrame, a.Seq)
	}
	o.sent--
	o.written = o.written[1:]
	o.backoff = 0
	o.armAck()
	o.touch()
	o.idle.Reset(o.idleTimeout)
	o.acked = m.row
	if m.gs != nil && m.gs.settle(ctx, o.friend.Name, copyDelivered, nil) {
		return nil
	}
	o.emit(ctx, MessageDelivered{To: o.friend.Name, Seq: m.seq, Group: m.group, Text: m.text, Sent: m.created, WasQueued: m.reported, Via: m.via})
	return nil
}

// markDelivered records the acks taken, one write per batch of them.
func (o *outbox) markDelivered() {
	if o.acked != 0 {
		o.store.MarkDelivered(o.friend.Name, o.acked)
		o.acked = 0
	}
}

// pump reports what needs reporting and sends whatever waits, dialling if
// it is time to.
func (o *outbox) pump(ctx context.Context) {
	o.mu.Lock()
	waiting := len(o.queue) - o.sent
	reachable, offline := o.reachable, o.offline
	o.reachable = false
	o.mu.Unlock()
	o.helloDone(ctx, reachable, waiting)
	mail := o.mail.pending(o.c)
	if waiting == 0 && mail == 0 && !(o.kept() && o.c == nil) {
		if o.announce {
			o.announceBack(ctx)
		}
		return
	}
	o.announce = false
	if o.c == nil && waiting > 0 && offline {
		// The friend could not be reached last time: friends who carry
		// get sealed copies at once, while this run tries the friend
		// again and the store records them, as a connection would.
		o.handOff(ctx)
	}
	if o.c == nil && !o.connect(ctx, reachable, offline) {
		if waiting > 0 && o.isOffline() {
			o.handOff(ctx) // the attempt just failed
		}
		return
	}
	if waiting == 0 && mail == 0 {
		// A kept connection with nothing to send: the hello, which waits
		// in the buffer for the first messages, goes out alone.
		if err := o.c.writeFrames(nil); err != nil {
			o.c.close()
		}
		return
	}
	if mail > 0 {
		frames := o.mail.unwritten(o.c)
		if err := o.c.writeFrames(append(o.sendersCards(frames), frames...)); err != nil {
			o.log.Warn("write failed", "err", err)
			o.c.close()
			return
		}
	}
	if waiting == 0 {
		return
	}
	if o.sent > maxInFlight/2 {
		return // acks make room; then more goes out, in one large write
	}
	room := maxInFlight - o.sent
	o.mu.Lock()
	batch := slices.Clone(o.queue[o.sent:min(len(o.queue), o.sent+room)])
	lows := make([]uint64, len(batch))
	for i, m := range batch {
		lows[i] = o.low[m.stream]
	}
	o.mu.Unlock()
	if o.store.LastErr() != nil {
		// The store failed its last write: until it works again, nothing
		// goes out before it is recorded, so that a message the person is
		// told was not recorded was not sent either.
		if !o.sync(ctx, batch[len(batch)-1].record) {
			return
		}
	}
	now := time.Now()
	wasIdle := len(o.written) == 0
	if err := o.c.write(batch, lows); err != nil {
		o.log.Warn("write failed", "err", err)
		o.c.close()
		// The reader sees the closed connection and run drops it.
		return
	}
	o.sent += len(batch)
	for range batch {
		o.written = append(o.written, now)
	}
	if wasIdle {
		o.armAck()
	}
	o.touch()
	o.idle.Reset(o.idleTimeout)
	// While the friend receives the batch, make it durable here.
	o.sync(ctx, batch[len(batch)-1].record)
}

// connect dials the friend if it is time to, and reports whether a
// connection is open. reachable says the friend just reached us; offline,
// that the last attempt failed.
func (o *outbox) connect(ctx context.Context, reachable, offline bool) bool {
	now := time.Now()
	if reachable && now.Sub(o.lastKick) >= retryOnReach {
		if now.Before(o.retryAt) {
			o.log.Info("friend connected to us: sending what waits now, not after the backoff", "backoff", o.backoff)
		}
		o.backoff, o.retryAt, o.lastKick = 0, now, now
	}
	if now.Before(o.retryAt) && offline {
		if c := o.inbound(); c != nil {
			// Backing off from dialling, but the friend reached us.
			o.c, o.borrowed = c, true
			o.live.Store(c)
			o.setConnected(true)
			return true
		}
	}
	if now.Before(o.retryAt) {
		// Waiting out the backoff (the retry timer ends it). For a friend
		// who could not be reached, a message just sent is a reason to
		// try now, at most once per retryOnSend.
		if !offline {
			return false
		}
		if now.Sub(o.lastDial) < retryOnSend || !o.hasUnreported() {
			o.reportQueued(ctx, o.lastErr)
			return false
		}
	}
	o.lastDial = now
	c, err := o.dial(ctx, o.fails)
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		if c := o.inbound(); c != nil {
			// We cannot reach the friend (behind a NAT, say), but the
			// friend reached us: send down their connection.
			o.log.Info("cannot reach friend; sending on their connection to us", "err", err)
			o.c, o.borrowed = c, true
			o.live.Store(c)
			o.setConnected(true)
			return true
		}
		o.unreachable(ctx, now, err)
		return false
	}
	o.up(ctx, c)
	return true
}

// up takes c, just dialled, as the connection to the friend.
func (o *outbox) up(ctx context.Context, c *conn) {
	o.c, o.fails = c, 0
	o.live.Store(c)
	o.setConnected(true)
	o.log.Info("client connection up")
	o.emit(ctx, ConnUp{Friend: o.friend.Name, Addr: o.friend.Addr(), ID: c.id, TLSVersion: c.tlsVersion})
}

// unreachable takes a failed attempt to reach the friend: it backs off,
// and tells the person, once per message, that their messages wait.
func (o *outbox) unreachable(ctx context.Context, now time.Time, err error) {
	if ctx.Err() != nil {
		return
	}
	o.fails++
	o.mu.Lock()
	o.offline = true
	o.mu.Unlock()
	o.backoff = nextBackoff(o.backoff)
	o.log.Warn("cannot reach friend", "err", err, "retry_in", o.backoff)
	o.retryAt = now.Add(o.backoff)
	o.retry.Reset(o.backoff)
	o.lastErr = &ReachError{Name: o.friend.Name, Addr: o.friend.Addr(), Err: err}
	o.reportQueued(ctx, o.lastErr)
}

// sync waits for the store's write rec, and so for every write handed to
// it before, and marks the messages whose writes are done durable. Those
// the store failed to record are taken off the queue and reported failed;
// false says there were some.
func (o *outbox) sync(ctx context.Context, rec *store.Pending) bool {
	if rec != nil {
		rec.Wait()
	}
	type failed struct {
		m       outgoing
		written bool
	}
	o.mu.Lock()
	var lost []failed
	kept := o.queue[:0]
	sent, written := o.sent, o.written[:0]
	for i, m := range o.queue {
		if !m.durable && m.record != nil {
			select {
			case <-m.record.Done():
				m.durable = m.record.Err() == nil
				if !m.durable {
					lost = append(lost, failed{m, i < o.sent || len(m.handed) > 0})
					if i < o.sent {
						sent--
					}
					continue
				}
			default:
			}
		}
		kept = append(kept, m)
		if i < o.sent {
			written = append(written, o.written[i])
		}
	}
	clear(o.queue[len(kept):])
	o.queue = kept
	o.mu.Unlock()
	if len(lost) == 0 {
		return true
	}
	if sent < o.sent && o.c != nil {
		// Acks would no longer match the queue. What the friend got, it
		// keeps; run drops the connection.
		o.c.closeFor(errNotRecorded)
	}
	o.sent, o.written = sent, written
	for _, f := range lost {
		if f.m.gs != nil && f.m.gs.settle(ctx, o.friend.Name, copyFailed, f.m.record.Err()) {
			continue
		}
		o.emit(ctx, MessageFailed{To: o.friend.Name, Seq: f.m.seq, Group: f.m.group, Text: f.m.text, Err: f.m.record.Err(), Written: f.written})
	}
	return false
}

func (o *outbox) hasUnreported() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range o.queue {
		if !m.reported {
			return true
		}
	}
	return false
}

// reportQueued emits MessageQueued for each waiting message not yet
// reported, so the person hears once per message that it waits; it makes
// them durable first.
func (o *outbox) reportQueued(ctx context.Context, err error) {
	o.mu.Lock()
	var last *store.Pending
	if len(o.queue) > 0 {
		last = o.queue[len(o.queue)-1].record
	}
	o.mu.Unlock()
	if !o.sync(ctx, last) {
		return
	}
	// Only what is durable: messages sent while sync waited are not yet,
	// and the next report tells of them.
	o.mu.Lock()
	var news []outgoing
	n := 0
	for ; n < len(o.queue); n++ {
		m := &o.queue[n]
		if !m.durable && m.record != nil {
			break
		}
		if !m.reported {
			m.reported = true
			news = append(news, *m)
		}
	}
	o.mu.Unlock()
	for _, m := range news {
		if m.gs != nil && m.gs.settle(ctx, o.friend.Name, copyQueued, err) {
			continue
		}
		o.emit(ctx, MessageQueued{To: o.friend.Name, Seq: m.seq, Group: m.group, Text: m.text, Waiting: n, Err: err})
	}
}

func nextBackoff(d time.Duration) time.Duration {
	d = min(max(2*d, retryMin), retryMax)
	jitter := 1 + retryJitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * jitter)
}
