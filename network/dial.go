package network

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"p2pchat/network/wire"

	"p2pchat/network/trust"
)

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

// dial connects to the friend and runs the TLS handshake, where the
// server's certificate must be the friend's (ClientConfig), and puts our
// hello in the write buffer: it goes out with the first messages, in the
// same flight, without waiting for the welcome. The welcome (or a refuse)
// is the first frame the connection's reader takes; it must carry the friend's name, and
// a friend seen for the first time has its identity pinned then, before
// any ack counts. So a message is shown two round trips after the dial
// begins (TCP, then TLS), not three. fails is how many attempts before this
// one failed in a row.
func (n *Node) dial(ctx context.Context, to Friend, fails int, log *slog.Logger) (*conn, error) {
	if to.Host == NoHost {
		return nil, ErrNoAddress
	}
	d := net.Dialer{Timeout: grown(DialTimeout, fails)}
	raw, err := d.DialContext(ctx, "tcp", to.Addr())
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	defer stop()
	tc := tls.Client(raw, n.pins.ClientConfig(to.Name))
	handshake := grown(n.cfg.HandshakeTimeout, fails)
	tc.SetDeadline(time.Now().Add(handshake))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	state := tc.ConnectionState()
	c := newConn(n, tc, bufio.NewReaderSize(tc, 4096), bufio.NewWriterSize(tc, 32<<10))
	c.friend, c.addr = to.Name, to.Addr()
	c.id = trust.CertID(state.PeerCertificates[0].Raw)
	c.tlsVersion = state.Version
	c.first = func(f wire.Frame) error {
		w, err := welcome(f)
		if err != nil {
			return err
		}
		switch {
		case w.Name != to.Name:
			return fmt.Errorf("it answered as %q, not %s", w.Name, to.Name)
		case w.Version != wire.Version:
			return fmt.Errorf("%w (it speaks protocol version %d, we speak %d)", ErrUpgrade, w.Version, wire.Version)
		}
		pinned, err := n.pins.PinFirstUse(to.Name, c.id)
		if pinned {
			log.Warn("identity pinned on first use", "id", c.id.String())
			n.emitSoon(IdentityPinned{Name: to.Name, Addr: to.Addr(), ID: c.id})
		}
		if err != nil {
			return err
		}
		tc.SetReadDeadline(time.Time{})
		return nil
	}
	if err := wire.WriteFrame(c.bw, wire.Hello{Version: wire.Version, Name: n.self.Name}); err != nil {
		raw.Close()
		return nil, err
	}
	// The welcome has the rest of the handshake timeout; writes get their
	// own deadlines.
	tc.SetWriteDeadline(time.Time{})
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		c.run(ctx)
	}()
	return c, nil
}

// welcome takes the first frame the friend sent back: a welcome, or a
// refusal.
func welcome(f wire.Frame) (wire.Welcome, error) {
	switch f := f.(type) {
	case wire.Welcome:
		return f, nil
	case wire.Refuse:
		if strings.Contains(f.Reason, "unsupported protocol version") || strings.Contains(f.Reason, ErrUpgrade.Error()) {
			// What p2pchat 0.1 answers to a newer hello, and what 0.2
			// (version 2) does.
			return wire.Welcome{}, fmt.Errorf("%w: it refused protocol version %d", ErrUpgrade, wire.Version)
		}
		return wire.Welcome{}, &RefusedError{Reason: f.Reason}
	default:
		return wire.Welcome{}, fmt.Errorf("%w: expected a welcome, got frame type %d", wire.ErrBadFrame, f.Type())
	}
}
