package network

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"time"

	"p2pchat/network/internal/store"
	"p2pchat/network/wire"
)

// inbox owns what is received from one friend: recognising messages
// received twice, recording the new ones before they are handed on, and
// handing on again at start what a crash kept from the screen, and
// keeping the friend within their budget on disk. Connections from the
// same friend take turns in receive.
type inbox struct {
	friend string
	store  *store.DB
	emit   func(context.Context, Event) bool
	log    *slog.Logger
	health *storeHealth
	table  *Table

	replayed chan struct{} // closed once replay is done; receive waits for it

	turn    chan struct{}            // held by the receive running; the fields below are its
	lastIn  map[wire.StreamID]uint64 // highest sequence number received, per stream seen this run
	refused map[string]bool          // group tags refused and reported, so once each
	budget  *budget

	// Carried messages that came ahead of an earlier one (receiveCarried).
	ctx         context.Context // the node's, for holdDone
	holdTimeout time.Duration
	mu          sync.Mutex
	pending     map[wire.StreamID][]pendingMail // by Seq
	missing     map[wire.StreamID]map[uint64]bool
	hold        *time.Timer // fires when a held message has waited holdTimeout
}

func newInbox(n *Node, f Friend) *inbox {
	return &inbox{
		friend:   f.Name,
		store:    n.store,
		emit:     n.emit,
		log:      n.log.With("friend", f.Name),
		health:   &n.health,
		table:    n.cfg.Table,
		replayed: make(chan struct{}),
		turn:     make(chan struct{}, 1),
		lastIn:   make(map[wire.StreamID]uint64),
		budget:   newBudget(n.cfg.ReceiveLimit, n.cfg.ReceiveWindow),
		pending:  make(map[wire.StreamID][]pendingMail),
		missing:  make(map[wire.StreamID]map[uint64]bool),

		ctx:         n.ctx,
		holdTimeout: n.cfg.HoldTimeout,
	}
}

// replay hands on again what was received from the friend and recorded,
// but never marked shown: the last run ended between the two. Nothing newer
// from the friend is handed on before it is done (receive waits).
func (in *inbox) replay(ctx context.Context) {
	defer close(in.replayed)
	recs, err := in.store.Unshown(in.friend)
	if err != nil {
		in.log.Error("cannot read messages not yet shown", "err", err)
		return
	}
	for _, r := range recs {
		if !in.emit(ctx, MessageReceived{From: in.friend, Seq: r.Seq, Sent: r.Sent, Group: r.Group, Text: r.Text, row: r.Row, replayed: true}) {
			return
		}
	}
}

// receive records and hands on the messages of batch that are new, in
// order, as many as the friend's budget on disk has room for, and returns
// how many of batch it is done with: those may be acknowledged, the rest
// are for the next call. via names the friend who carried them sealed, ""
// when they came directly. A message is new if its sequence number is
// above the last one received in its stream, or fills a gap that a message
// which came ahead of it skipped; any other is a duplicate (a retry after
// a lost ack, or a second copy) and is only acknowledged. One that jumps more
// than wire.MaxSeqJump past it is malformed. One whose group tag is not a
// group of our table with the friend in it is refused: see refuseGroup.
// When not even the first new message has room, receive waits for it
// (nothing more is read from the friend meanwhile) unless closed is
// closed; the first such wait of a pause is reported (ReceivingPaused). An
// error means nothing more of batch is to be acknowledged.
//
// Order: a carried message that came ahead of an earlier one of its stream
// is held, recorded but not yet handed on, until the earlier ones come or
// holdTimeout passes; while a stream has messages held, its new messages
// wait behind them.
func (in *inbox) receive(ctx context.Context, closed <-chan struct{}, batch []wire.Message, via string) (int, error) {
	return in.receiveAs(ctx, closed, batch, via, false)
}

// receiveAs is receive; ahead says batch is a carried message shown ahead
// of an earlier one that has not come (receiveCarried).
func (in *inbox) receiveAs(ctx context.Context, closed <-chan struct{}, batch []wire.Message, via string, ahead bool) (int, error) {
	select {
	case <-in.replayed:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	select {
	case in.turn <- struct{}{}:
	default:
		select {
		case in.turn <- struct{}{}:
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-closed:
			return 0, net.ErrClosed
		}
	}
	defer func() { <-in.turn }()
	now := time.Now()
	if err := in.budget.load(in.store, in.friend, now); err != nil {
		return 0, err
	}
	var fresh []store.In
	var gaps []store.Gap
	var bytes int64
	seen := make(map[wire.StreamID]uint64)
	taken := make(map[wire.StreamID]map[uint64]bool) // gaps filled in this batch
	done := 0
	for _, m := range batch {
		last, ok := seen[m.Stream]
		if !ok {
			var err error
			if last, err = in.received(m.Stream); err != nil {
				return 0, err
			}
		}
		late := false
		if m.Seq <= last {
			var err error
			if late, err = in.isMissing(m.Stream, m.Seq); err != nil {
				return 0, err
			}
			if !late || taken[m.Stream][m.Seq] {
				done++
				continue
			}
		}
		if !late && m.Seq-last > wire.MaxSeqJump {
			return 0, fmt.Errorf("%w: message %d in a stream at %d", wire.ErrBadFrame, m.Seq, last)
		}
		if err := in.table.checkGroupTag(in.friend, m.Group); err != nil {
			if !late {
				seen[m.Stream] = m.Seq
			}
			in.refuseGroupLocked(ctx, m.Group, err)
			done++
			continue
		}
		size := int64(len(m.Text))
		if !in.budget.fits(now, bytes, size) {
			if done > 0 {
				break // these first; the next call waits
			}
			if err := in.waitForRoom(ctx, closed, size); err != nil {
				return 0, err
			}
			now = time.Now()
		}
		bytes += size
		done++
		if late {
			if taken[m.Stream] == nil {
				taken[m.Stream] = make(map[uint64]bool)
			}
			taken[m.Stream][m.Seq] = true
			fresh = append(fresh, store.In{Stream: m.Stream, Seq: m.Seq, Group: m.Group, Text: m.Text, Sent: m.Sent, Late: true})
			continue
		}
		if from := max(last, m.Low) + 1; from < m.Seq {
			if m.Seq-from >= store.MaxGap {
				return 0, fmt.Errorf("%w: message %d skips %d others", wire.ErrBadFrame, m.Seq, m.Seq-from)
			}
			gaps = append(gaps, store.Gap{Stream: m.Stream, From: from, To: m.Seq - 1})
		}
		seen[m.Stream] = m.Seq
		fresh = append(fresh, store.In{Stream: m.Stream, Seq: m.Seq, Group: m.Group, Text: m.Text, Sent: m.Sent})
	}
	if len(fresh) == 0 {
		for s, seq := range seen {
			in.lastIn[s] = seq
		}
		return done, nil
	}
	var p *store.Pending
	if len(gaps) > 0 || len(taken) > 0 {
		p = in.store.AddInGaps(in.friend, fresh, gaps, in.budget.period(now))
	} else {
		p = in.store.AddIn(in.friend, fresh, in.budget.period(now))
	}
	if err := p.Wait(); err != nil {
		in.health.failed(ctx, err)
		return 0, err // not acknowledged: the friend sends it again
	}
	in.health.worked(ctx)
	in.budget.add(now, bytes)
	for s, seq := range seen {
		in.lastIn[s] = seq
	}
	in.mu.Lock()
	for _, g := range gaps {
		if in.missing[g.Stream] == nil {
			in.missing[g.Stream] = make(map[uint64]bool)
		}
		for seq := g.From; seq <= g.To; seq++ {
			in.missing[g.Stream][seq] = true
		}
	}
	for _, m := range fresh {
		if m.Late {
			delete(in.missing[m.Stream], m.Seq)
		}
	}
	in.mu.Unlock()
	for i, m := range fresh {
		ev := MessageReceived{From: in.friend, Seq: m.Seq, Sent: m.Sent, Group: m.Group, Text: m.Text, Via: via, Late: m.Late, row: m.Row}
		ev.AheadOfGap = ahead && i == 0 && len(gaps) > 0
		if !in.emit(ctx, ev) {
			return 0, ctx.Err()
		}
	}
	// Let the shell show them now rather than once the acks are written:
	// the shell's goroutine was readied on this thread and would wait
	// (BenchmarkWarmLatency: see the hint in conn.read).
	runtime.Gosched()
	return done, nil
}

// isMissing reports whether seq of stream is a gap a message that came
// ahead of it skipped, in this run or an earlier one.
func (in *inbox) isMissing(stream wire.StreamID, seq uint64) (bool, error) {
	in.mu.Lock()
	missing := in.missing[stream][seq]
	in.mu.Unlock()
	if missing {
		return true, nil
	}
	return in.store.Missing(in.friend, stream, seq)
}

// pendingMail is a carried message that came ahead of an earlier one of
// its stream. It is neither recorded nor receipted until the earlier ones
// come, or holdTimeout passes: so what is recorded is in its sender's
// order, and a crash meanwhile loses nothing (the carrier, unanswered,
// brings it again).
type pendingMail struct {
	msg     wire.Message
	via     string
	receipt func()
	since   time.Time
}

// maxPending bounds the carried messages waiting for an earlier one, per
// friend: past it, they are taken at once, out of order.
const maxPending = 1024

// receiveCarried takes a message a carrier brought: at once if it is next
// in its stream, else when the earlier ones have come (or holdTimeout
// passed). receipt is called once it is recorded.
func (in *inbox) receiveCarried(ctx context.Context, closed <-chan struct{}, m wire.Message, via string, receipt func()) error {
	ahead, err := in.ahead(m)
	if err != nil {
		return err
	}
	if ahead {
		in.mu.Lock()
		held := in.pending[m.Stream]
		dup := slices.ContainsFunc(held, func(p pendingMail) bool { return p.msg.Seq == m.Seq })
		if !dup && in.pendingCount() < maxPending {
			i, _ := slices.BinarySearchFunc(held, m.Seq, func(p pendingMail, seq uint64) int { return cmp.Compare(p.msg.Seq, seq) })
			in.pending[m.Stream] = slices.Insert(held, i, pendingMail{m, via, receipt, time.Now()})
			in.log.Info("message held: an earlier one has not come", "seq", m.Seq, "via", via, "held", len(in.pending[m.Stream]))
			in.armHold()
			in.mu.Unlock()
			return in.flushPending(ctx, closed, m.Stream) // the earlier one may have come meanwhile
		}
		in.mu.Unlock()
		if dup {
			return nil
		}
	}
	if _, err := in.receive(ctx, closed, []wire.Message{m}, via); err != nil {
		return err
	}
	receipt()
	return in.flushPending(ctx, closed, m.Stream)
}

// ahead reports whether m, new, comes before an earlier message of its
// stream that neither came nor is known acknowledged (m.Low).
func (in *inbox) ahead(m wire.Message) (bool, error) {
	select {
	case in.turn <- struct{}{}:
	case <-in.ctx.Done():
		return false, in.ctx.Err()
	}
	defer func() { <-in.turn }()
	last, err := in.received(m.Stream)
	if err != nil {
		return false, err
	}
	return m.Seq > last && m.Seq > max(last, m.Low)+1, nil
}

// flushPending records the held messages of stream that are next now, in
// order.
func (in *inbox) flushPending(ctx context.Context, closed <-chan struct{}, stream wire.StreamID) error {
	for {
		in.mu.Lock()
		held := in.pending[stream]
		if len(held) == 0 {
			in.mu.Unlock()
			return nil
		}
		p := held[0]
		in.mu.Unlock()
		ahead, err := in.ahead(p.msg)
		if err != nil || ahead {
			return err
		}
		in.mu.Lock()
		in.pending[stream] = slices.DeleteFunc(in.pending[stream], func(q pendingMail) bool { return q.msg.Seq == p.msg.Seq })
		in.mu.Unlock()
		if _, err := in.receive(ctx, closed, []wire.Message{p.msg}, p.via); err != nil {
			return err
		}
		p.receipt()
	}
}

func (in *inbox) pendingCount() int {
	n := 0
	for _, held := range in.pending {
		n += len(held)
	}
	return n
}

// armHold sets the hold timer for the message held longest. mu is held.
func (in *inbox) armHold() {
	var first time.Time
	for _, held := range in.pending {
		for _, p := range held {
			if first.IsZero() || p.since.Before(first) {
				first = p.since
			}
		}
	}
	if first.IsZero() {
		return
	}
	d := time.Until(first.Add(in.holdTimeout))
	if in.hold == nil {
		in.hold = time.AfterFunc(d, in.holdDone)
	} else {
		in.hold.Reset(d)
	}
}

// holdDone takes, out of order, the held messages of each stream whose
// oldest waited holdTimeout: the first is shown ahead of the gap.
func (in *inbox) holdDone() {
	in.mu.Lock()
	var due []wire.StreamID
	for s, held := range in.pending {
		if len(held) > 0 && slices.ContainsFunc(held, func(p pendingMail) bool { return time.Since(p.since) >= in.holdTimeout }) {
			due = append(due, s)
		}
	}
	in.mu.Unlock()
	for _, s := range due {
		in.mu.Lock()
		held := in.pending[s]
		delete(in.pending, s)
		in.mu.Unlock()
		for i, p := range held {
			if _, err := in.receiveAs(in.ctx, nil, []wire.Message{p.msg}, p.via, i == 0); err != nil {
				in.log.Warn("cannot record a held message", "seq", p.msg.Seq, "err", err)
				return
			}
			p.receipt()
		}
	}
	in.mu.Lock()
	in.armHold()
	in.mu.Unlock()
}

// waitForRoom waits until need bytes fit the friend's budget, unless ctx
// is done or closed is closed. The turn is held.
func (in *inbox) waitForRoom(ctx context.Context, closed <-chan struct{}, need int64) error {
	for now := time.Now(); !in.budget.fits(now, 0, need); now = time.Now() {
		until := in.budget.roomAt(now, need)
		if !in.budget.warned {
			in.budget.warned = true
			in.log.Warn("over its budget on disk: receiving paused", "limit", in.budget.limit, "window", in.budget.window, "until", until)
			in.emit(ctx, ReceivingPaused{From: in.friend, Limit: in.budget.limit, Window: in.budget.window, Until: until})
		}
		t := time.NewTimer(time.Until(until))
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-closed:
			t.Stop()
			return net.ErrClosed
		}
	}
	return nil
}

// refuseGroupLocked drops a message whose group tag err refuses, and
// reports it once per group tag. The message is acknowledged and not
// shown, rather than left unacknowledged or its connection refused: the
// friend's queue goes out in order, so a message never acknowledged would
// hold every later one from the friend behind it for ever, and sending it
// again cannot mend a table that differs from ours. It is not recorded;
// only this run remembers its number, so if its acknowledgement is lost
// and the next run gets it again, it is reported once more. The turn is
// held.
func (in *inbox) refuseGroupLocked(ctx context.Context, group string, err error) {
	if in.refused[group] {
		return
	}
	if in.refused == nil {
		in.refused = make(map[string]bool)
	}
	if len(in.refused) >= maxRefusedGroups {
		return // a friend making up tags without end: the log has the first
	}
	in.refused[group] = true
	in.log.Warn("message for a group refused: acknowledged, not shown", "group", group, "err", err)
	in.emit(ctx, MessageRefused{From: in.friend, Group: group, Err: err})
}

// maxRefusedGroups bounds the group tags remembered, and reported, per
// friend.
const maxRefusedGroups = 64

// received returns the last sequence number received in stream, from
// memory or the store. The turn is held.
func (in *inbox) received(stream wire.StreamID) (uint64, error) {
	if last, ok := in.lastIn[stream]; ok {
		return last, nil
	}
	last, err := in.store.Received(in.friend, stream)
	if err == nil {
		in.lastIn[stream] = last
	}
	return last, err
}
