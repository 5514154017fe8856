package network

import (
	"net"
	"sync"
)

// Limits on inbound connections that have not yet proved to be a friend's
// (TLS handshake and hello not done). Past a limit the oldest such
// connection is closed to make room, so a flood or a slowloris holds at
// most these many descriptors and cannot keep a friend out: the friend's
// connection is the newest, and it needs the slot only for the few
// milliseconds of its handshake.
const (
	maxUnauthenticated        = 128
	maxUnauthenticatedPerHost = 16
)

// admission tracks unauthenticated inbound connections.
type admission struct {
	mu      sync.Mutex
	seq     uint64
	conns   map[net.Conn]admitted
	perHost map[string]int
}

type admitted struct {
	host string
	seq  uint64
}

func newAdmission() *admission {
	return &admission{conns: make(map[net.Conn]admitted), perHost: make(map[string]int)}
}

// admit records c and returns the connections to close to stay within the
// limits, oldest first.
func (a *admission) admit(c net.Conn) []net.Conn {
	host := remoteHost(c)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	a.conns[c] = admitted{host: host, seq: a.seq}
	a.perHost[host]++
	var evict []net.Conn
	for a.perHost[host] > maxUnauthenticatedPerHost {
		evict = append(evict, a.evictOldestLocked(host))
	}
	for len(a.conns) > maxUnauthenticated {
		evict = append(evict, a.evictOldestLocked(""))
	}
	return evict
}

// evictOldestLocked forgets the oldest connection, from host if host is not
// empty, and returns it.
func (a *admission) evictOldestLocked(host string) net.Conn {
	var oldest net.Conn
	var seq uint64
	for c, ad := range a.conns {
		if (host == "" || ad.host == host) && (oldest == nil || ad.seq < seq) {
			oldest, seq = c, ad.seq
		}
	}
	a.forgetLocked(oldest)
	return oldest
}

// done forgets c: it has authenticated or closed. It reports whether c was
// still tracked, that is, not evicted.
func (a *admission) done(c net.Conn) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.conns[c]
	if ok {
		a.forgetLocked(c)
	}
	return ok
}

func (a *admission) forgetLocked(c net.Conn) {
	ad := a.conns[c]
	delete(a.conns, c)
	if a.perHost[ad.host]--; a.perHost[ad.host] <= 0 {
		delete(a.perHost, ad.host)
	}
}

func remoteHost(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	return host
}
