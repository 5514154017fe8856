//go:build linux

package main

// TestPartition runs two instances in network namespaces of their own,
// joined by a veth pair, and cuts the link between them while they write to
// each other. It needs root and ip(8) from iproute2. It uses main_test.go's
// binary, streams and small helpers, read-only.

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
	"time"
)

// partitionMessages is how many numbered messages each side writes during
// a partition: half when the link goes down, half midway through.
const partitionMessages = 6

func TestPartition(t *testing.T) {
	ip := requireNetnsPrivileges(t)
	t.Run("short", func(t *testing.T) {
		// Both ends down for 1 s, well within the default --ack-timeout
		// of 10 s: no connection is dropped, and TCP's retransmissions
		// deliver what was written on the original connections.
		runPartition(t, ip, partitionCase{
			down:      []int{0, 1},
			partition: time.Second,
		})
	})
	t.Run("long", func(t *testing.T) {
		// Only user_1's end down, for 3 s with --ack-timeout 1s: each
		// sender takes its connection for dead and dials again. user_1's
		// dials fail at once (no route), user_2's go unanswered (its
		// link is up, the other end is not). Once healed, everything
		// unacknowledged is sent again on new connections, while the
		// kernels retransmit the abandoned ones: the receivers must
		// display each message once.
		runPartition(t, ip, partitionCase{
			flags:     []string{"--ack-timeout", "1s"},
			down:      []int{0},
			partition: 3 * time.Second,
			reconnect: true,
		})
	})
}

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

// partitionCase is one partition: which namespaces' ends of the veth pair go
// down and for how long, and the flags both instances get.
type partitionCase struct {
	flags     []string
	down      []int // 0: user_1's namespace, 1: user_2's
	partition time.Duration
	reconnect bool // the senders must drop their connections and dial again
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

// setLink brings the veth end in namespace i up or down.
func (n *netnsPair) setLink(t *testing.T, i int, up bool) {
	t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	n.ipRun(t, "-n", n.ns[i], "link", "set", n.veth[i], state)
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
	args := []string{"netns", "exec", n.ns[i], binary, "--peers", peersFile, "--data-dir", dataDir}
	args = append(append(args, flags...), name)
	// ip netns exec execs the binary in place; its own process group lets
	// the cleanup kill whatever it might have started too.
	cmd := exec.Command(n.ip, args...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &nsInstance{process: startCmd(t, name, cmd), name: name}
	p.dataDir = dataDir
	p.stderr.waitLine(t, "listening on "+net.JoinHostPort(n.addr[i].Addr().String(), "50000"))
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

// openInbound is how many inbound connections from peer the instance's log
// shows open: up, and not yet down.
func (p *nsInstance) openInbound(t *testing.T, peer string) int {
	t.Helper()
	return p.logCount(t, "inbound connection up", peer) -
		p.logCount(t, "inbound connection down", peer) -
		p.logCount(t, "inbound connection idle, closed", peer) -
		p.logCount(t, "protocol violation, connection closed", peer)
}

func runPartition(t *testing.T, ip string, pc partitionCase) {
	n := newNetnsPair(t, ip)
	names := [2]string{"user_1", "user_2"}
	var dirs [2]string
	var table strings.Builder
	fmt.Fprintln(&table, "# written by partition_test.go")
	for i, name := range names {
		dirs[i] = t.TempDir()
		fmt.Fprintf(&table, "%s %s 50000 %s\n", name, n.addr[i].Addr(), idOf(t, dirs[i], name))
	}
	peersFile := writeFile(t, "peers", table.String())
	var u [2]*nsInstance
	for i, name := range names {
		u[i] = n.start(t, i, name, peersFile, dirs[i], pc.flags...)
	}
	other := func(i int) int { return 1 - i }

	// want[i] is what u[i] must display, exactly and in this order.
	var want [2][]string
	send := func(from int, text string) {
		u[from].send(t, names[other(from)]+"/"+text)
		want[other(from)] = append(want[other(from)], messageFrom(names[from], text))
	}

	// A message each way opens both client connections.
	for i := range u {
		send(i, "before the partition")
	}
	for i := range u {
		u[i].stdout.waitLine(t, want[i][0])
	}

	// The partition is fault injection: it lasts pc.partition by the
	// clock, so the sleeps below are its length, not waits for outcomes.
	for _, i := range pc.down {
		n.setLink(t, i, false)
	}
	for k := 1; k <= partitionMessages; k++ {
		if k == partitionMessages/2+1 {
			time.Sleep(pc.partition / 2)
		}
		for i := range u {
			send(i, fmt.Sprintf("%s to %s #%d", names[i], names[other(i)], k))
		}
	}
	time.Sleep(pc.partition - pc.partition/2)
	// Nothing got through while the link was down.
	for i := range u {
		if got := u[i].stdout.snapshot(); len(got) != 1 {
			t.Errorf("%s displayed during the partition:\n%s", names[i], quoteLines(got))
		}
	}
	for _, i := range pc.down {
		n.setLink(t, i, true)
	}
	healed := time.Now()

	// Every message arrives, each once and in order.
	for i := range u {
		deadline := time.Now().Add(waitTimeout)
		for !displayedAll(u[i].stdout.snapshot(), want[i]) {
			if time.Now().After(deadline) {
				t.Fatalf("%s has not displayed everything %v after the link was healed:\n\t%s", names[i], time.Since(healed).Round(time.Millisecond), strings.Join(deliveryProblems(u[i].stdout.snapshot(), want[i]), "\n\t"))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if problems := deliveryProblems(u[i].stdout.snapshot(), want[i]); len(problems) > 0 {
			t.Errorf("%s's display %v after the link was healed:\n\t%s", names[i], time.Since(healed).Round(time.Millisecond), strings.Join(problems, "\n\t"))
		}
	}
	// Then wait until nothing more can arrive: each sender has every
	// message acknowledged (so nothing is left to send again), and each
	// receiver has read to its end any connection abandoned during the
	// partition, whose messages the kernel retransmits once the link is
	// back. A duplicate from either would be on display by then.
	for i := range u {
		to := names[other(i)]
		deadline := time.Now().Add(waitTimeout)
		for left := u[i].waiting(t, to); left != 0; left = u[i].waiting(t, to) {
			if time.Now().After(deadline) {
				t.Fatalf("%s still has %d messages to %s unacknowledged %v after the link was healed", names[i], left, to, time.Since(healed).Round(time.Millisecond))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for i := range u {
		from := names[other(i)]
		waitPoll(t, fmt.Sprintf("%s's log to show one inbound connection from %s open", names[i], from), func() bool {
			return u[i].openInbound(t, from) == 1
		})
	}
	for i := range u {
		if problems := deliveryProblems(u[i].stdout.snapshot(), want[i]); len(problems) > 0 {
			t.Errorf("%s's display once every connection from %s but the current one had closed:\n\t%s", names[i], names[other(i)], strings.Join(problems, "\n\t"))
		}
	}

	for i := range u {
		to := names[other(i)]
		ups := u[i].logCount(t, "client connection up", to)
		lost := u[i].logCount(t, "client connection lost", to)
		noAck := u[i].logCount(t, "client connection lost", to, "no acknowledgement")
		stderr := withoutPeersTables(u[i].stderr.snapshot(), names[:])
		if !pc.reconnect {
			// TCP delivered the original writes: same connection, and no
			// notice but the greeting.
			if ups != 1 || lost != 0 {
				t.Errorf("%s's log shows %d connections to %s up and %d lost, want 1 and 0 (no reconnection within the ack timeout)", names[i], ups, to, lost)
			}
			if len(stderr) != 1 {
				t.Errorf("%s's stderr has more than the greeting:\n%s", names[i], quoteLines(stderr))
			}
			continue
		}
		if noAck < 1 || ups < 2 {
			t.Errorf("%s's log shows %d connections to %s up and %d lost for want of an acknowledgement, want at least 2 and 1", names[i], ups, to, noAck)
		}
		var queued int
		for _, l := range stderr[1:] {
			switch {
			case strings.HasPrefix(l, to+" is offline: queued, "):
				queued++
			case strings.HasPrefix(l, "Delivered to "+to+": "):
			default:
				t.Errorf("%s's stderr: unexpected %q", names[i], l)
			}
		}
		// Without a route, user_1's dials fail at once and it says so.
		if slices.Contains(pc.down, i) && queued == 0 {
			t.Errorf("%s's stderr does not say that messages to %s were queued while its link was down:\n%s", names[i], to, quoteLines(stderr))
		}
		t.Logf("%s: %d client connections to %s, %d dropped for want of an acknowledgement, %d queued notices", names[i], ups, to, noAck, queued)
	}
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
			// FRIEND ADDRESS OUR-CONNECTION THEIRS WAITING
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

// withoutPeersTables returns lines without the tables that /peers prints:
// a header, a row per friend, a blank line, a header, a row per friend.
func withoutPeersTables(lines []string, names []string) []string {
	var out []string
	isRow := func(l string) bool {
		f := strings.Fields(l)
		return len(f) >= 2 && slices.Contains(names, f[0]) && !strings.HasPrefix(f[1], "is")
	}
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "FRIEND ") {
			out = append(out, lines[i])
			continue
		}
		for i+1 < len(lines) && (isRow(lines[i+1]) || lines[i+1] == "" || strings.HasPrefix(lines[i+1], "FRIEND ")) {
			i++
		}
	}
	return out
}

// displayedAll says whether every line of want is in got.
func displayedAll(got, want []string) bool {
	for _, w := range want {
		if !slices.Contains(got, w) {
			return false
		}
	}
	return true
}

// deliveryProblems compares what an instance displayed with what it should
// have, exactly once each and in order, and says what is wrong.
func deliveryProblems(got, want []string) []string {
	count := make(map[string]int)
	for _, l := range got {
		count[l]++
	}
	var problems []string
	for _, w := range want {
		switch c := count[w]; {
		case c == 0:
			problems = append(problems, fmt.Sprintf("lost: %q", w))
		case c > 1:
			problems = append(problems, fmt.Sprintf("displayed %d times: %q", c, w))
		}
	}
	for _, l := range got {
		if !slices.Contains(want, l) {
			problems = append(problems, fmt.Sprintf("unexpected: %q", l))
		}
	}
	if len(problems) == 0 && !slices.Equal(got, want) {
		problems = append(problems, fmt.Sprintf("out of order:\n%s\nwant:\n%s", quoteLines(got), quoteLines(want)))
	}
	return problems
}
