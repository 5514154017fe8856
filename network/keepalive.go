package network

import (
	"context"
	"time"

	"p2pchat/network/wire"
)

// An instance with no address of its own (its row is "-": behind a NAT)
// cannot be dialled, so it keeps one connection open to a friend who can
// be: what friends have for it, and what they carry for it, comes down that
// connection. This is the one connection made without a message to send,
// besides the one each announce makes at start. A ping every
// keepAliveEvery keeps the NAT's mapping; the friend never closes an
// inbound connection that speaks within twice its idle timeout.

// keepAliveEvery is how often the kept connection carries a ping: under
// the 30 s that the stingiest NATs keep an idle mapping.
const keepAliveEvery = 25 * time.Second

// keepAlive keeps a connection open to one reachable friend, in table
// order, moving to the next while the one kept cannot be reached.
func (n *Node) keepAlive(ctx context.Context) {
	var reachable []string
	for _, f := range n.cfg.Table.Friends() {
		if f.Name != n.self.Name && f.Host != NoHost {
			reachable = append(reachable, f.Name)
		}
	}
	if len(reachable) == 0 {
		return
	}
	t := time.NewTicker(keepAliveEvery)
	defer t.Stop()
	i := 0
	n.outboxes[reachable[0]].setKeep(true)
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		o := n.outboxes[reachable[i]]
		if c := o.live.Load(); c != nil {
			c.owe(wire.Ping{})
			continue
		}
		if o.isOffline() && len(reachable) > 1 {
			o.setKeep(false)
			i = (i + 1) % len(reachable)
			n.log.Info("keeping a connection open to another friend", "friend", reachable[i])
			n.outboxes[reachable[i]].setKeep(true)
		}
	}
}

func (o *outbox) setKeep(keep bool) {
	o.mu.Lock()
	o.keep = keep
	o.mu.Unlock()
	o.wake()
}

func (o *outbox) kept() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.keep
}
