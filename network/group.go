package network

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"p2pchat/network/wire"
)

// AllGroup is the group of every friend in the table: @all.
const AllGroup = wire.AllGroup

// SendGroup sends text to every member of group (its name without '@';
// AllGroup for every friend) but ourselves. Each member gets a copy of
// its own, with its own sequence number, through the member's outbox like
// any message: recorded, sent at once, queued while the member cannot be
// reached. It returns the members written to, in the group's order (its
// table line's; the table's for @all).
//
// Instead of a MessageDelivered, MessageQueued or MessageFailed per copy,
// one GroupReport says how the message went once every copy is delivered,
// queued or failed; a copy reported queued there is reported by its own
// MessageDelivered, with Group set, when it arrives. An error with no
// members means nothing was sent; ErrClosed with some means the node
// stopped after queueing those, which go out at the next start.
func (n *Node) SendGroup(group, text string) ([]string, error) {
	members, ok := n.cfg.Table.Members(group)
	switch {
	case !ok:
		return nil, fmt.Errorf("%w @%s", ErrUnknownGroup, group)
	case !slices.Contains(members, n.self.Name):
		return nil, fmt.Errorf("you are %w of @%s, so its members would not take it from you", ErrNotMember, group)
	}
	if err := wire.CheckText(text); err != nil {
		return nil, err
	}
	if n.ctx.Err() != nil {
		return nil, ErrClosed
	}
	members = slices.DeleteFunc(members, func(m string) bool { return m == n.self.Name })
	if len(members) == 0 {
		return nil, fmt.Errorf("nobody but you is in @%s", group)
	}
	gs := &groupSend{group: group, text: text, sent: time.Now(), emit: n.emit, state: make(map[string]copyState)}
	for _, m := range members {
		gs.order = append(gs.order, m)
		gs.state[m] = copyPending
	}
	for i, m := range members {
		if _, err := n.outboxes[m].sendCopy(text, gs); err != nil {
			if i == 0 {
				return nil, err
			}
			// Stopping: the copies queued go out at the next start.
			return members[:i], err
		}
	}
	return members, nil
}

// Groups returns the table's groups in table order, @all not among them.
func (n *Node) Groups() []Group { return n.cfg.Table.Groups() }

// copyState is where one member's copy of a group message is.
type copyState int

const (
	copyPending copyState = iota
	copyDelivered
	copyQueued
	copyFailed
)

// groupSend follows the copies of one group message sent in this run until
// every one is delivered, queued or failed, and then reports them in one
// GroupReport. Copies waiting from an earlier run have none.
type groupSend struct {
	group, text string
	sent        time.Time
	emit        func(context.Context, Event) bool
	first       int64 // the row of the first copy; set by SendGroup's goroutine as it sends, read by it only

	mu       sync.Mutex
	order    []string // the members, in the group's order
	state    map[string]copyState
	why      map[string]error // of the queued and failed copies
	reported bool             // the GroupReport went out
}

// settle records that member's copy reached st, err saying why for a
// queued or failed one, and emits the GroupReport if it was the last to
// settle. It reports whether it took the news: false means the report is
// out already, and the copy is to be reported on its own. A delivery
// after a queued report counts as delivered.
func (g *groupSend) settle(ctx context.Context, member string, st copyState, err error) bool {
	g.mu.Lock()
	if g.reported {
		g.mu.Unlock()
		return false
	}
	if g.state[member] == copyDelivered || g.state[member] == copyFailed {
		g.mu.Unlock()
		return true // settled for good already
	}
	g.state[member] = st
	if err != nil {
		if g.why == nil {
			g.why = make(map[string]error)
		}
		g.why[member] = err
	}
	r := GroupReport{Group: g.group, Text: g.text, Sent: g.sent}
	for _, m := range g.order {
		switch g.state[m] {
		case copyPending:
			g.mu.Unlock()
			return true
		case copyDelivered:
			r.Delivered = append(r.Delivered, m)
		case copyQueued:
			r.Queued = append(r.Queued, m)
		case copyFailed:
			r.Failed = append(r.Failed, m)
		}
	}
	g.reported = true
	for m, err := range g.why {
		if g.state[m] != copyDelivered {
			if r.Why == nil {
				r.Why = make(map[string]error)
			}
			r.Why[m] = err
		}
	}
	g.mu.Unlock()
	g.emit(ctx, r)
	return true
}

// checkGroupTag checks the group tag of a message from friend: it must name
// @all or a group of the table with friend in it. A tag of another table
// (one that differs from ours) or of a friend who made it up is an error.
func (t *Table) checkGroupTag(friend, group string) error {
	if group == "" {
		return nil
	}
	members, ok := t.Members(group)
	if !ok {
		return fmt.Errorf("%w @%s in our table", ErrUnknownGroup, group)
	}
	if !slices.Contains(members, friend) {
		return fmt.Errorf("%s is %w of @%s in our table", friend, ErrNotMember, group)
	}
	return nil
}

// GroupEntry is one message of a group's history: one we wrote to the
// group, whatever the number of copies, or one a member wrote to it.
type GroupEntry struct {
	From      string    // the member who wrote it; "" for us
	Text      string    // as written: may hold any characters
	Sent      time.Time // the writer's clock when it was written
	At        time.Time // when it was recorded here
	To        []string  // ours: the members it was written to, in the group's order
	Delivered []string  // ours: those of To who acknowledged it, in that order
}

// GroupHistory returns the last count messages written to group (without
// '@'; AllGroup for @all), both ways, oldest first, in the order they were
// recorded here.
func (n *Node) GroupHistory(group string, count int) ([]GroupEntry, error) {
	members, ok := n.cfg.Table.Members(group)
	if !ok {
		return nil, fmt.Errorf("%w @%s", ErrUnknownGroup, group)
	}
	ms, err := n.store.GroupHistory(group, count)
	if err != nil {
		return nil, err
	}
	// Members first, in the group's order; anyone the group had when the
	// message was written and no longer has, after them by name.
	byGroup := func(a, b string) int {
		i, j := slices.Index(members, a), slices.Index(members, b)
		switch {
		case i >= 0 && j >= 0:
			return i - j
		case i >= 0:
			return -1
		case j >= 0:
			return 1
		}
		return strings.Compare(a, b)
	}
	out := make([]GroupEntry, len(ms))
	for i, m := range ms {
		out[i] = GroupEntry{From: m.From, Text: m.Text, Sent: m.Sent, At: m.At, To: m.To, Delivered: m.Delivered}
		slices.SortFunc(out[i].To, byGroup)
		slices.SortFunc(out[i].Delivered, byGroup)
	}
	return out, nil
}
