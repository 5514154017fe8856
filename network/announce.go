package network

import (
	"context"
	"errors"
)

// At start, the node tells each friend it has talked with before that it is
// back: one connection each, with nothing to send, closed by the idle timer
// as any other, or as soon as the friend connects to us. The friend, on
// that inbound connection, sends at once whatever it queued for us
// (outbox.reached), instead of waiting out its backoff. It is the one dial
// made with no message to send; a friend who cannot be reached is not
// tried again for it.

// announceTo makes o's first look dial the friend, if we have talked with
// them before: a message with them is recorded, or their identity is
// pinned, by the table or on first use. It runs before o.run.
func (n *Node) announceTo(o *outbox) {
	name := o.friend.Name
	talked, err := n.store.HasHistory(name)
	if err != nil {
		o.log.Error("cannot read the history: not announcing that we are back", "err", err)
		return
	}
	if _, pinned := n.pins.Pinned(name); !talked && pinned == NotPinned {
		o.log.Debug("never talked with: not saying we are back")
		return
	}
	o.announce = true
	o.wake()
}

// announceBack dials the friend once, with nothing to send. A failure is
// only logged: the friend is not running, and hears from us when there is
// a message, as usual. A friend already connected to us knows.
func (o *outbox) announceBack(ctx context.Context) {
	o.announce = false
	if o.c != nil {
		return
	}
	if o.inbound() != nil {
		o.log.Info("not saying we are back: the friend is connected to us")
		return
	}
	c, err := o.dial(ctx, 0)
	if err != nil {
		var idErr *IdentityError
		switch {
		case ctx.Err() != nil:
		case errors.As(err, &idErr):
			// Shown to the person with the next message to them.
			o.log.Warn("not saying we are back: the friend's address answers with another identity", "err", err)
		default:
			o.log.Info("friend not reached to say we are back", "err", err)
		}
		return
	}
	o.up(ctx, c)
	// The hello waits in the write buffer for a first message: send it alone.
	if err := c.write(nil, nil); err != nil {
		o.log.Warn("write failed", "err", err)
		c.close() // run sees it closed and drops it
		return
	}
	o.log.Info("said we are back")
	o.idle.Reset(o.idleTimeout)
	o.hello = c
}

// helloDone closes the connection that said we are back once the friend
// has connected to us (reachable): it has done its work, and one
// connection per friend, not two, stays open until an idle timer closes
// it. One that carried a message of ours is an ordinary connection.
func (o *outbox) helloDone(ctx context.Context, reachable bool, waiting int) {
	switch {
	case o.hello == nil:
	case o.c != o.hello || waiting > 0 || o.sent > 0:
		o.hello = nil
	case reachable:
		o.hello = nil
		o.log.Info("the friend connected to us: closing the connection that said we are back")
		o.drop(ctx, ErrIdle)
	}
}
