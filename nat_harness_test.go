//go:build linux

package main

// A small internet in network namespaces, for friends behind NAT (issue
// 13): a public network, and home networks each behind a router of its own
// that masquerades and lets nothing in. The real binary runs in each
// namespace. It needs what netns_harness_test.go needs (root, ip(8)) and
// iptables(8).
//
// natApart, with the addresses every world uses:
//
//	            public network 198.51.100.0/24 (bridge "pub" in namespace inet)
//	   +------------------+---------------------------+
//	   |                  |                           |
//	  bob          198.51.100.1 wan            198.51.100.2 wan
//	  198.51.100.10   [router r1]                 [router r2]
//	                  MASQUERADE out of wan,      MASQUERADE out of wan,
//	                  in only ESTABLISHED,RELATED in only ESTABLISHED,RELATED
//	                  192.0.2.1/26 lan (bridge)   192.0.2.65/26 lan (bridge)
//	                      |                           |
//	                  alice 192.0.2.2             carol 192.0.2.66
//
// natLAN has one router, r1, with alice on 192.0.2.2 and carol on 192.0.2.3
// behind it. In general home k (from 0) is 192.0.2.64k/26 behind router
// r(k+1), whose wan is 198.51.100.(k+1) and lan .64k+1; its friends are
// from .64k+2, public friend j (from 0) is 198.51.100.(10+j), and each
// machine is a namespace p2pchat-nat-PID-SEQ-{inet,bob,r1,alice,...}.
// Nothing routes a home network from outside, as on the internet, where
// nobody routes private addresses: a dial into a home from elsewhere fails
// at once. After routeHomes it reaches the home's router, which drops it.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// natLayout says who sits where: on the public network, or in a home
// network behind a NAT router of its own.
type natLayout struct {
	public []string   // friends on the public network
	homes  [][]string // each home network's friends
}

var (
	// natApart has alice and carol each behind a NAT router, bob public.
	natApart = natLayout{public: []string{"bob"}, homes: [][]string{{"alice"}, {"carol"}}}
	// natLAN has alice and carol behind one NAT router, bob public.
	natLAN = natLayout{public: []string{"bob"}, homes: [][]string{{"alice", "carol"}}}
)

// natWorld is a layout built in namespaces of this test's own.
type natWorld struct {
	ip, iptables string
	prefix       string                // of every namespace's name
	names        []string              // every friend, public first
	ns           map[string]string     // each friend's namespace
	addr         map[string]netip.Addr // each friend's own address: in the table
	outside      map[string]netip.Addr // as the public network sees the friend
	home         map[string]int        // each friend's home network from 1; 0: public
	routers      []natRouter           // home k's is routers[k-1]
	dirs         map[string]string     // data directories
	peersFile    string                // from table: every friend at its own address
}

// natRouter is one home network's router.
type natRouter struct {
	ns   string
	wan  netip.Addr   // on the public network
	home netip.Prefix // the home network behind it
}

// newNATWorld builds layout: the namespaces, links, addresses, routes and
// the routers' rules, and the table. Every namespace is deleted when the
// test ends, even if it fails, after the instances in it are killed.
func newNATWorld(t *testing.T, layout natLayout) *natWorld {
	t.Helper()
	w := &natWorld{
		ip:       requireNetnsPrivileges(t),
		iptables: requireIptables(t),
		prefix:   fmt.Sprintf("p2pchat-nat-%d-%d-", os.Getpid(), netnsSeq.Add(1)),
		ns:       make(map[string]string),
		addr:     make(map[string]netip.Addr),
		outside:  make(map[string]netip.Addr),
		home:     make(map[string]int),
		dirs:     make(map[string]string),
	}
	t.Cleanup(func() { w.checkGone(t) }) // first registered: runs last
	inet := w.addNS(t, "inet")
	w.addBridge(t, inet, "pub", netip.Prefix{})
	for j, name := range layout.public {
		a := netip.AddrFrom4([4]byte{198, 51, 100, byte(10 + j)})
		w.addFriend(t, name, inet, "pub", netip.PrefixFrom(a, 24), netip.Addr{})
		w.outside[name] = a
	}
	for k, friends := range layout.homes {
		r := w.addNS(t, fmt.Sprintf("r%d", k+1))
		wan := netip.AddrFrom4([4]byte{198, 51, 100, byte(1 + k)})
		w.plug(t, inet, "pub", "p-r"+fmt.Sprint(k+1), r, "wan", netip.PrefixFrom(wan, 24))
		gw := netip.AddrFrom4([4]byte{192, 0, 2, byte(64*k + 1)})
		w.addBridge(t, r, "lan", netip.PrefixFrom(gw, 26))
		w.routers = append(w.routers, natRouter{r, wan, netip.PrefixFrom(gw, 26).Masked()})
		w.masquerade(t, r)
		for j, name := range friends {
			a := netip.AddrFrom4([4]byte{192, 0, 2, byte(64*k + 2 + j)})
			w.addFriend(t, name, r, "lan", netip.PrefixFrom(a, 26), gw)
			w.outside[name], w.home[name] = wan, k+1
		}
	}
	for _, name := range w.names {
		w.dirs[name] = t.TempDir()
	}
	w.peersFile = w.table(t, func(name string) string { return w.addr[name].String() })
	return w
}

// table writes a table of every friend, each on port 50000 at host(name)
// and pinned by its ID, and returns its path.
func (w *natWorld) table(t *testing.T, host func(name string) string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintln(&b, "# written by nat_harness_test.go")
	for _, name := range w.names {
		fmt.Fprintf(&b, "%s %s 50000 %s\n", name, host(name), idOf(t, w.dirs[name], name))
	}
	return writeFile(t, "peers", b.String())
}

// addNS creates the namespace prefix+role with lo up, deleted when the
// test ends.
func (w *natWorld) addNS(t *testing.T, role string) string {
	t.Helper()
	ns := w.prefix + role
	w.run(t, w.ip, "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command(w.ip, "netns", "del", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", ns, err, out)
		}
	})
	w.run(t, w.ip, "-n", ns, "link", "set", "lo", "up")
	return ns
}

// addBridge creates bridge br in ns, with address a if it is valid, up.
func (w *natWorld) addBridge(t *testing.T, ns, br string, a netip.Prefix) {
	t.Helper()
	w.run(t, w.ip, "-n", ns, "link", "add", "name", br, "type", "bridge")
	if a.IsValid() {
		w.run(t, w.ip, "-n", ns, "addr", "add", a.String(), "dev", br)
	}
	w.run(t, w.ip, "-n", ns, "link", "set", br, "up")
}

// plug joins namespace ns to bridge br in namespace hub by a veth pair:
// port on the bridge, dev in ns with address a. Both are created inside
// hub, dev straight into ns: the host's namespace is never touched.
func (w *natWorld) plug(t *testing.T, hub, br, port, ns, dev string, a netip.Prefix) {
	t.Helper()
	w.run(t, w.ip, "-n", hub, "link", "add", "name", port, "type", "veth", "peer", "name", dev, "netns", ns)
	w.run(t, w.ip, "-n", hub, "link", "set", port, "master", br, "up")
	w.run(t, w.ip, "-n", ns, "addr", "add", a.String(), "dev", dev)
	w.run(t, w.ip, "-n", ns, "link", "set", dev, "up")
}

// addFriend gives name a namespace plugged into br in hub, at a, with a
// default route through gw if it is valid.
func (w *natWorld) addFriend(t *testing.T, name, hub, br string, a netip.Prefix, gw netip.Addr) {
	t.Helper()
	ns := w.addNS(t, name)
	w.plug(t, hub, br, "h-"+name, ns, "eth0", a)
	if gw.IsValid() {
		w.run(t, w.ip, "-n", ns, "route", "add", "default", "via", gw.String())
	}
	w.names = append(w.names, name)
	w.ns[name], w.addr[name] = ns, a.Addr()
}

// masquerade makes router namespace r a home router: it forwards, rewrites
// what leaves by wan to wan's address, and lets in from wan only what
// answers a connection from lan. Within lan, hosts reach each other.
func (w *natWorld) masquerade(t *testing.T, r string) {
	t.Helper()
	w.run(t, w.ip, "netns", "exec", r, "sh", "-c", "echo 1 >/proc/sys/net/ipv4/ip_forward")
	// Every dial it cannot route is answered "unreachable", however many:
	// by default the kernel answers a host about once a second after a
	// burst of 6, and a dial it does not answer times out instead.
	w.run(t, w.ip, "netns", "exec", r, "sh", "-c", "echo 0 >/proc/sys/net/ipv4/icmp_ratelimit")
	for _, rule := range [][]string{
		{"-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"},
		{"-P", "FORWARD", "DROP"},
		// From lan: out to wan, and back into lan (bridged frames pass
		// FORWARD too if the host has br_netfilter loaded).
		{"-A", "FORWARD", "-i", "lan", "-j", "ACCEPT"},
		{"-A", "FORWARD", "-i", "wan", "-o", "lan", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
	} {
		w.run(t, w.ip, append([]string{"netns", "exec", r, w.iptables, "-w"}, rule...)...)
	}
}

// routeHomes routes every home network from the public network and the
// other routers through its router, as if the internet routed private
// addresses: a dial into a home then reaches its router, which drops it,
// and times out instead of failing at once.
func (w *natWorld) routeHomes(t *testing.T) {
	t.Helper()
	for _, r := range w.routers {
		for _, name := range w.names {
			if w.home[name] == 0 {
				w.run(t, w.ip, "-n", w.ns[name], "route", "add", r.home.String(), "via", r.wan.String())
			}
		}
		for _, other := range w.routers {
			if other != r {
				w.run(t, w.ip, "-n", other.ns, "route", "add", r.home.String(), "via", r.wan.String())
			}
		}
	}
}

// dialFrom opens a TCP connection to addr from inside namespace ns, as a
// program there would, closes it, and says how the dial ended: connected,
// refused, unreachable or timeout (after timeout).
func (w *natWorld) dialFrom(t *testing.T, ns string, addr netip.AddrPort, timeout time.Duration) string {
	t.Helper()
	f, err := os.Open(filepath.Join("/run/netns", ns))
	if err != nil {
		t.Fatalf("opening namespace %s: %v", ns, err)
	}
	defer f.Close()
	type result struct{ setns, dial error }
	done := make(chan result, 1)
	go func() {
		// Locked and never unlocked: the thread that enters ns ends with
		// this goroutine, and nothing else runs on it.
		runtime.LockOSThread()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{setns: err}
			return
		}
		c, err := net.DialTimeout("tcp", addr.String(), timeout)
		if err == nil {
			c.Close()
		}
		done <- result{dial: err}
	}()
	r := <-done
	var ne net.Error
	switch {
	case r.setns != nil:
		t.Fatalf("entering namespace %s: %v", ns, r.setns)
	case r.dial == nil:
		return "connected"
	case errors.Is(r.dial, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(r.dial, syscall.ENETUNREACH), errors.Is(r.dial, syscall.EHOSTUNREACH):
		return "unreachable"
	case errors.As(r.dial, &ne) && ne.Timeout():
		return "timeout"
	}
	t.Fatalf("dialling %s from %s: %v", addr, ns, r.dial)
	return ""
}

// run runs a command and fails the test if it fails.
func (w *natWorld) run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
}

// checkGone fails the test if a namespace of this world is still there.
func (w *natWorld) checkGone(t *testing.T) {
	t.Helper()
	out, err := exec.Command(w.ip, "netns", "list").Output()
	if err != nil {
		t.Errorf("ip netns list: %v", err)
		return
	}
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, w.prefix) {
			t.Errorf("namespace left behind: %s", l)
		}
	}
}

// start runs name in its namespace with the world's table, flags first,
// and waits for its greeting. It is killed when the test ends.
func (w *natWorld) start(t *testing.T, name string, flags ...string) *nsInstance {
	t.Helper()
	return startInNetns(t, w.ip, w.ns[name], w.addr[name], name, w.peersFile, w.dirs[name], flags...)
}

// direct says whether from can open a connection to to: to is public, or
// both are in one home network.
func (w *natWorld) direct(from, to string) bool {
	return w.home[to] == 0 || w.home[to] == w.home[from]
}

// seenFrom is from's address as to sees it on a connection from from.
func (w *natWorld) seenFrom(from, to string) netip.Addr {
	if w.home[from] != 0 && w.home[from] == w.home[to] {
		return w.addr[from]
	}
	return w.outside[from]
}

// natProbeTimeout is how long dialFrom waits for a dial that a router
// drops: on a veth, a dial that gets through is answered in well under a
// millisecond.
const natProbeTimeout = 300 * time.Millisecond

// TestNATWorld proves each layout is what it claims, with the real binary:
// a friend behind NAT reaches public friends and friends of its own home
// network, and nobody else; what it reaches sees it at its router's public
// address; and a public friend that cannot reach it gets its messages to
// it through the connection it opened.
func TestNATWorld(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layout natLayout
	}{
		{"apart", natApart},
		{"lan", natLAN},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newNATWorld(t, tc.layout)
			p := make(map[string]*nsInstance)
			for _, name := range w.names {
				p[name] = w.start(t, name)
			}
			type pair struct{ from, to string }
			var direct, cut []pair
			for _, from := range w.names {
				for _, to := range w.names {
					if from == to {
						continue
					}
					if w.direct(from, to) {
						direct = append(direct, pair{from, to})
					} else {
						cut = append(cut, pair{from, to})
					}
				}
			}
			text := func(c pair, what string) string { return fmt.Sprintf("%s to %s, %s", c.from, c.to, what) }

			// At start each instance said it is back to every friend
			// (the table pins them all) that it could reach and that was
			// already running: wait for those connections, so that what
			// follows does not race them.
			saidBack := func(from, to string) bool {
				return w.direct(from, to) && slices.Index(w.names, to) < slices.Index(w.names, from)
			}
			for _, c := range direct {
				if saidBack(c.from, c.to) {
					waitPoll(t, c.to+"'s log to show "+c.from+" saying it is back", func() bool {
						return p[c.to].logCount(t, "inbound connection up", c.from) > 0
					})
				}
			}
			// First, what cannot get through: to a friend who said it is
			// back, it goes down their connection at once; else the dial
			// fails and the message waits.
			for _, c := range cut {
				p[c.from].send(t, c.to+"/"+text(c, "queued"))
				if saidBack(c.to, c.from) {
					p[c.to].stdout.waitLine(t, messageFrom(c.from, text(c, "queued")))
					continue
				}
				l := p[c.from].stderr.waitLine(t, c.to+" is offline: queued, 1 waiting")
				if want := fmt.Sprintf("cannot reach %s at %s:50000: ", c.to, w.addr[c.to]); !strings.Contains(l, want) {
					t.Errorf("%s says %q, want it to contain %q", c.from, l, want)
				}
			}
			// Then what can, and from which address it comes.
			for _, c := range direct {
				p[c.from].send(t, c.to+"/"+text(c, "direct"))
				p[c.to].stdout.waitLine(t, messageFrom(c.from, text(c, "direct")))
				up := p[c.to].logCount(t, "inbound connection up", c.from)
				seen := p[c.to].logCount(t, "inbound connection up", c.from, fmt.Sprintf(" remote=%s:", w.seenFrom(c.from, c.to)))
				if up == 0 || seen != up {
					t.Errorf("%s's log shows %d connections from %s up, %d of them from %s; want all, and at least one", c.to, up, c.from, seen, w.seenFrom(c.from, c.to))
				}
			}
			// A friend that cannot reach another who reached it sends
			// down the connection the other opened: what waited, then
			// what it writes now.
			for _, c := range cut {
				if !w.direct(c.to, c.from) {
					continue
				}
				p[c.from].send(t, c.to+"/"+text(c, "on their connection"))
				want := []string{messageFrom(c.from, text(c, "queued")), messageFrom(c.from, text(c, "on their connection"))}
				got := p[c.to].stdout.wait(t, fmt.Sprintf("both messages from %s", c.from), func(lines []string) bool {
					return displayedAll(lines, want)
				})
				got = slices.DeleteFunc(got, func(l string) bool { return !strings.HasPrefix(l, messageFrom(c.from, "")) })
				if !slices.Equal(got, want) {
					t.Errorf("%s displayed from %s:\n%s\nwant:\n%s", c.to, c.from, quoteLines(got), quoteLines(want))
				}
			}

			// Last, with plain sockets, while every instance listens:
			// nothing is forwarded to a home's router from outside, and
			// what reaches a home is dropped there, not answered.
			probe := func(from string, to netip.Addr, want string) {
				t.Helper()
				if got := w.dialFrom(t, w.ns[from], netip.AddrPortFrom(to, 50000), natProbeTimeout); got != want {
					t.Errorf("a dial from %s to %s:50000: %s, want %s", from, to, got, want)
				}
			}
			for _, r := range w.routers {
				probe(w.names[0], r.wan, "refused")
			}
			for _, routes := range []struct {
				add bool
				cut string // how a dial into another's home ends
			}{{false, "unreachable"}, {true, "timeout"}} {
				if routes.add {
					w.routeHomes(t)
				}
				for _, c := range direct {
					probe(c.from, w.addr[c.to], "connected")
				}
				for _, c := range cut {
					probe(c.from, w.addr[c.to], routes.cut)
				}
			}
		})
	}
}
