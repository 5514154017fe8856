//go:build linux

package main

// The network namespaces of the tests that need them (partition_test.go,
// netem_test.go, slowlink_test.go; nat_harness_test.go builds a larger
// world with these helpers): two namespaces joined by a veth pair,
// and instances of p2pchat running in them. They need root and ip(8) from
// iproute2.

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// requireNetnsPrivileges returns the path of ip(8) if this process can
// create network namespaces. Otherwise it fails the test under CI, which
// runs as root and must run it, and skips it for a developer without root.
func requireNetnsPrivileges(t *testing.T) string {
	t.Helper()
	ip, reason := "", ""
	if os.Geteuid() != 0 {
		reason = "not root: creating network namespaces needs root"
	} else if ip = lookIP(); ip == "" {
		reason = "ip (iproute2) not found in PATH, /usr/sbin or /sbin"
	}
	if reason == "" {
		return ip
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s; CI runs as root with iproute2 and must run this test", reason)
	}
	t.Skipf("%s (run it as root with iproute2 installed; CI does)", reason)
	return ""
}

func lookIP() string {
	if p, err := exec.LookPath("ip"); err == nil {
		return p
	}
	for _, p := range []string{"/usr/sbin/ip", "/sbin/ip"} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// netnsPair is two network namespaces of this test's own, joined by a veth
// pair; user_1 runs in the first and user_2 in the second.
type netnsPair struct {
	ip   string // path of ip(8)
	ns   [2]string
	veth [2]string
	addr [2]netip.Prefix // each end's address, with the subnet's length
}

// netnsSeq numbers the namespace pairs of this process, so that the names
// (with the PID) are unique across subtests and -count.
var netnsSeq atomic.Int32

// newNetnsPair creates the namespaces, the veth pair, and brings lo and the
// veths up. The namespaces are deleted when the test ends, even if it
// fails; processes started in them must be stopped before that (t.Cleanup
// runs last-registered first, so the instances' cleanups run first).
func newNetnsPair(t *testing.T, ip string) *netnsPair {
	t.Helper()
	subnet := unroutedSubnet(t, ip)
	n := &netnsPair{ip: ip}
	seq := netnsSeq.Add(1)
	a := subnet.Addr()
	for i := range 2 {
		n.ns[i] = fmt.Sprintf("p2pchat-test-%d-%d-%d", os.Getpid(), seq, i+1)
		n.veth[i] = fmt.Sprintf("p2pc%d", i+1)
		a = a.Next()
		n.addr[i] = netip.PrefixFrom(a, subnet.Bits())
		n.ipRun(t, "netns", "add", n.ns[i])
		ns := n.ns[i]
		t.Cleanup(func() {
			if out, err := exec.Command(ip, "netns", "del", ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns del %s: %v: %s", ns, err, out)
			}
		})
	}
	// Created inside the first namespace, with its peer put straight into
	// the second: the host's namespace is never touched.
	n.ipRun(t, "-n", n.ns[0], "link", "add", n.veth[0], "type", "veth", "peer", "name", n.veth[1], "netns", n.ns[1])
	for i := range 2 {
		n.ipRun(t, "-n", n.ns[i], "link", "set", "lo", "up")
		n.ipRun(t, "-n", n.ns[i], "addr", "add", n.addr[i].String(), "dev", n.veth[i])
		n.ipRun(t, "-n", n.ns[i], "link", "set", n.veth[i], "up")
	}
	return n
}

// ipRun runs ip(8) with args and fails the test if it fails.
func (n *netnsPair) ipRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(n.ip, args...).CombinedOutput(); err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// unroutedSubnet returns a /24 in 10.0.0.0/8 that no route of the host's
// covers or falls in, preferring 10.213.0.0/24. The namespaces have routing
// tables of their own, but a subnet the host uses would confuse whoever
// reads the test's output.
func unroutedSubnet(t *testing.T, ip string) netip.Prefix {
	t.Helper()
	out, err := exec.Command(ip, "-4", "route", "show", "table", "all").Output()
	if err != nil {
		t.Fatalf("ip -4 route show table all: %v", err)
	}
	var used []netip.Prefix
	for _, f := range strings.Fields(string(out)) {
		if p, err := netip.ParsePrefix(f); err == nil {
			used = append(used, p.Masked())
		} else if a, err := netip.ParseAddr(f); err == nil && a.Is4() {
			used = append(used, netip.PrefixFrom(a, 32))
		}
		// "default" is not a route into a subnet: ignored.
	}
	for i := range 256 {
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(213 + i), 0, 0}), 24)
		if !slices.ContainsFunc(used, cand.Overlaps) {
			return cand
		}
	}
	t.Fatalf("every 10.x.0.0/24 overlaps a route of the host:\n%s", out)
	return netip.Prefix{}
}

// nsInstance is one p2pchat running in a namespace.
type nsInstance struct {
	*process
	name string
}

// start runs name in namespace i, stdin a pipe, and waits for its greeting.
// It is killed when the test ends.
func (n *netnsPair) start(t *testing.T, i int, name, peersFile, dataDir string, flags ...string) *nsInstance {
	t.Helper()
	return startInNetns(t, n.ip, n.ns[i], n.addr[i].Addr(), name, peersFile, dataDir, flags...)
}

// startInNetns runs name in namespace ns, stdin a pipe, and waits for its
// greeting on addr, port 50000. It is killed when the test ends.
func startInNetns(t *testing.T, ip, ns string, addr netip.Addr, name, peersFile, dataDir string, flags ...string) *nsInstance {
	t.Helper()
	args := []string{"netns", "exec", ns, binary, "--peers", peersFile, "--data-dir", dataDir}
	args = append(append(args, flags...), name)
	// ip netns exec execs the binary in place; its own process group lets
	// the cleanup kill whatever it might have started too.
	cmd := exec.Command(ip, args...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &nsInstance{process: startCmd(t, name, cmd), name: name}
	p.dataDir = dataDir
	p.stderr.waitLine(t, "listening on "+net.JoinHostPort(addr.String(), "50000"))
	return p
}

func (p *nsInstance) logPath() string { return filepath.Join(p.dataDir, "p2pchat.log") }

// logCount counts the lines of the instance's log that have msg="<msg>",
// the field friend=<peer>, and contain every one of also.
func (p *nsInstance) logCount(t *testing.T, msg, peer string, also ...string) int {
	t.Helper()
	b, err := os.ReadFile(p.logPath())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if !strings.Contains(l, `msg="`+msg+`"`) || !slices.Contains(strings.Fields(l), "friend="+peer) {
			continue
		}
		if !slices.ContainsFunc(also, func(s string) bool { return !strings.Contains(l, s) }) {
			n++
		}
	}
	return n
}

// waiting asks the instance with /peers how many messages to friend wait
// for an acknowledgement.
func (p *nsInstance) waiting(t *testing.T, friend string) int {
	t.Helper()
	from := len(p.stderr.snapshot())
	p.send(t, "/peers")
	n := -1
	p.stderr.wait(t, "/peers to list "+friend, func(lines []string) bool {
		for _, l := range lines[from:] {
			// FRIEND ADDRESS SEEN WAITING
			if f := strings.Fields(l); len(f) >= 3 && f[0] == friend {
				if v, err := strconv.Atoi(f[len(f)-1]); err == nil {
					n = v
					return true
				}
			}
		}
		return false
	})
	return n
}

// pairTable writes the table of the pair's two instances, user_1 in the
// first namespace and user_2 in the second, on port 50000, each pinned by
// its ID; it returns the names, the data directories and the table's path.
func (n *netnsPair) pairTable(t *testing.T) (names, dirs [2]string, peersFile string) {
	t.Helper()
	names = [2]string{"user_1", "user_2"}
	var table strings.Builder
	fmt.Fprintln(&table, "# written by netns_harness_test.go")
	for i, name := range names {
		dirs[i] = t.TempDir()
		fmt.Fprintf(&table, "%s %s 50000 %s\n", name, n.addr[i].Addr(), idOf(t, dirs[i], name))
	}
	return names, dirs, writeFile(t, "peers", table.String())
}
