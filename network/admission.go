package network

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Limits on inbound connections that have not yet proved to be a friend's
// (TLS handshake and hello not done). Past a limit a connection is closed
// to make room, so a flood or a slowloris holds at most these many
// descriptors. The one closed is the most stalled (see evictLocked): a
// friend's handshake, which moves on within a round trip, outlasts any
// number of strangers that stall, from the same address or not. A connection that completed TLS with a pinned friend's
// certificate leaves these limits altogether (see proved).
const (
	maxUnauthenticated        = 128
	maxUnauthenticatedPerHost = 16
)

// stage is how far an inbound handshake got. Strangers are closed in this
// order: silent ones first, then those stalled in their first message.
type stage int32

const (
	stageSilent   stage = iota // nothing read yet
	stagePartial               // bytes read, but no whole ClientHello
	stageHello                 // a whole ClientHello read: our answer is on its way
	stageAnswered              // the client read our answer and went on
)

// watchedConn is an admitted connection as its TLS handshake sees it: it
// records how far the handshake got.
type watchedConn struct {
	net.Conn
	stage    atomic.Int32
	progress atomic.Int64 // when it was admitted or last moved on, Unix nanoseconds
	wrote    atomic.Bool
}

func (w *watchedConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if n > 0 {
		if w.wrote.Load() {
			w.raise(stageAnswered)
		} else {
			w.raise(stagePartial)
		}
	}
	return n, err
}

func (w *watchedConn) Write(p []byte) (int, error) {
	w.wrote.Store(true)
	return w.Conn.Write(p)
}

// raise moves w on to s, never back.
func (w *watchedConn) raise(s stage) {
	for {
		old := w.stage.Load()
		if stage(old) >= s {
			return
		}
		if w.stage.CompareAndSwap(old, int32(s)) {
			w.progress.Store(time.Now().UnixNano())
			return
		}
	}
}

// sawClientHello is for tls.Config.GetConfigForClient: it marks the
// connection as having sent a whole ClientHello, before the server's
// answer is computed.
func sawClientHello(h *tls.ClientHelloInfo) (*tls.Config, error) {
	if w, ok := h.Conn.(*watchedConn); ok {
		w.raise(stageHello)
	}
	return nil, nil
}

// admission tracks inbound connections until their hello is done.
type admission struct {
	mu      sync.Mutex
	seq     uint64
	conns   map[net.Conn]*admitted // strangers, by their raw connection
	perHost map[string]int
	proven  map[net.Conn]*admitted // done TLS with a pinned friend's certificate
	perID   map[ID]int
}

type admitted struct {
	host  string
	id    ID // proven ones only
	seq   uint64
	watch *watchedConn
}

func newAdmission() *admission {
	return &admission{
		conns:   make(map[net.Conn]*admitted),
		perHost: make(map[string]int),
		proven:  make(map[net.Conn]*admitted),
		perID:   make(map[ID]int),
	}
}

// admit records c and returns what its TLS handshake must run on, and the
// connections to close to stay within the limits. c itself is never among
// them: a newcomer has not had the time to show progress.
func (a *admission) admit(c net.Conn) (net.Conn, []net.Conn) {
	host := remoteHost(c)
	w := &watchedConn{Conn: c}
	w.progress.Store(time.Now().UnixNano())
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	a.conns[c] = &admitted{host: host, seq: a.seq, watch: w}
	a.perHost[host]++
	var evict []net.Conn
	for a.perHost[host] > maxUnauthenticatedPerHost {
		evict = append(evict, a.evictLocked(c, host))
	}
	for len(a.conns) > maxUnauthenticated {
		evict = append(evict, a.evictLocked(c, ""))
	}
	return w, evict
}

// evictLocked forgets and returns the stranger, other than keep and from
// host if host is not empty, that is the most stalled: one that has not
// sent a whole ClientHello before one that has, and of those the one that
// has gone longest without moving on (silent since it was accepted, or
// stuck in the middle of a message).
func (a *admission) evictLocked(keep net.Conn, host string) net.Conn {
	var worst net.Conn
	var wHello bool
	var wSince int64
	for c, ad := range a.conns {
		if c == keep || host != "" && ad.host != host {
			continue
		}
		hello := stage(ad.watch.stage.Load()) >= stageHello
		since := ad.watch.progress.Load()
		if worst == nil || !hello && wHello || hello == wHello && since < wSince {
			worst, wHello, wSince = c, hello, since
		}
	}
	a.forgetLocked(worst)
	return worst
}

// proved moves c, whose TLS handshake showed the certificate pinned for a
// friend with identity id, out of the strangers' limits: no stranger can
// have it closed. One identity keeps at most maxInboundPerFriend such
// connections before their hello; past that its oldest is returned, to be
// closed. It returns nil as well if c was already evicted.
func (a *admission) proved(c net.Conn, id ID) []net.Conn {
	a.mu.Lock()
	defer a.mu.Unlock()
	ad, ok := a.conns[c]
	if !ok {
		return nil
	}
	a.forgetLocked(c)
	a.seq++
	ad.id, ad.seq = id, a.seq
	a.proven[c] = ad
	a.perID[id]++
	var evict []net.Conn
	for a.perID[id] > maxInboundPerFriend {
		var oldest net.Conn
		var seq uint64
		for o, p := range a.proven {
			if o != c && p.id == id && (oldest == nil || p.seq < seq) {
				oldest, seq = o, p.seq
			}
		}
		a.forgetLocked(oldest)
		evict = append(evict, oldest)
	}
	return evict
}

// done forgets c: it has authenticated or closed. It reports whether c was
// still tracked, that is, not evicted.
func (a *admission) done(c net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, stranger := a.conns[c]
	_, proven := a.proven[c]
	if stranger || proven {
		a.forgetLocked(c)
	}
	return stranger || proven
}

func (a *admission) forgetLocked(c net.Conn) {
	if ad, ok := a.conns[c]; ok {
		delete(a.conns, c)
		if a.perHost[ad.host]--; a.perHost[ad.host] <= 0 {
			delete(a.perHost, ad.host)
		}
	}
	if ad, ok := a.proven[c]; ok {
		delete(a.proven, c)
		if a.perID[ad.id]--; a.perID[ad.id] <= 0 {
			delete(a.perID, ad.id)
		}
	}
}

func remoteHost(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}
