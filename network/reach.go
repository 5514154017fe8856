package network

import (
	"context"
	"net"
	"strconv"
	"time"

	"p2pchat/network/wire"
)

// Whether this instance can be reached from outside, learnt by itself: on
// its first connection with a friend who has an address, it asks the
// friend to dial it back (Probe) at the address the connection comes from
// and its own port. A friend behind the same NAT would succeed where
// others fail, so the friend asked is one whose row has an address, and
// one answer is taken per run. An instance that cannot be reached behaves
// as one whose row is "-": its card says so, and it keeps a connection open
// to a friend who can be (keepalive.go).

// probeTimeout bounds the dial back.
const probeTimeout = 3 * time.Second

// probe asks the friend at the other end of c to dial us back, once per
// run: when our row and theirs have an address.
func (n *Node) probe(c *conn) {
	f, ok := n.cfg.Table.Lookup(c.friend)
	if !ok || f.Host == NoHost || n.self.Host == NoHost || !n.probing.CompareAndSwap(false, true) {
		return
	}
	c.owe(wire.Probe{Port: uint16(n.self.Port)})
}

// answerProbe dials back the friend at the other end of c, at the host
// its connection comes from and the port it asked, once per connection,
// and says how it went: a friend cannot make us dial anyone but itself.
func (n *Node) answerProbe(c *conn, p wire.Probe) {
	if !c.probed.CompareAndSwap(false, true) {
		return
	}
	host, _, err := net.SplitHostPort(c.nc.RemoteAddr().String())
	if err != nil {
		return
	}
	addr := net.JoinHostPort(host, strconv.Itoa(int(p.Port)))
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ctx, cancel := context.WithTimeout(n.ctx, probeTimeout)
		defer cancel()
		var d net.Dialer
		dc, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			dc.Close()
		}
		n.log.Info("dialled a friend back", "friend", c.friend, "addr", addr, "ok", err == nil)
		c.owe(wire.Probed{OK: err == nil, Addr: addr})
	}()
}

// takeProbed takes a friend's answer to our probe.
func (n *Node) takeProbed(c *conn, p wire.Probed) {
	if !n.probing.Load() || !n.reachKnown.CompareAndSwap(false, true) {
		return // not asked, or answered already
	}
	if p.OK {
		n.log.Info("reachable from outside", "as", p.Addr, "checked_by", c.friend)
		return
	}
	n.log.Warn("not reachable from outside (behind a NAT?): friends carry what waits for us, and a connection is kept open", "as", p.Addr, "checked_by", c.friend)
	n.behindNAT.Store(true)
	n.cards.mu.Lock()
	n.cards.own = n.cfg.Identity.Card(false, time.Now())
	own := n.cards.own
	n.cards.mu.Unlock()
	for name := range n.outboxes {
		if oc := n.carrierConn(name); oc != nil {
			oc.owe(own)
		}
	}
	n.startKeepAlive()
}

// startKeepAlive starts keepAlive, once.
func (n *Node) startKeepAlive() {
	n.keepOnce.Do(func() {
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			n.keepAlive(n.ctx)
		}()
	})
}
