//go:build linux

package main

// TestPartition runs two instances in network namespaces of their own,
// joined by a veth pair, and cuts the link between them while they write to
// each other. It needs root and ip(8) from iproute2. It uses the harness
// (harness_test.go, netns_harness_test.go), read-only.

import (
	"fmt"
	"slices"
	"strings"
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

// partitionCase is one partition: which namespaces' ends of the veth pair go
// down and for how long, and the flags both instances get.
type partitionCase struct {
	flags     []string
	down      []int // 0: user_1's namespace, 1: user_2's
	partition time.Duration
	reconnect bool // the senders must drop their connections and dial again
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
	names, dirs, peersFile := n.pairTable(t)
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

// withoutPeersTables returns lines without the tables that /peers prints:
// a header, a row per friend, a blank line, a header, a row per friend, a
// blank line, a header, a row per @group.
func withoutPeersTables(lines []string, names []string) []string {
	var out []string
	isHeader := func(l string) bool { return strings.HasPrefix(l, "FRIEND ") || strings.HasPrefix(l, "GROUP ") }
	isRow := func(l string) bool {
		f := strings.Fields(l)
		return len(f) >= 2 && (slices.Contains(names, f[0]) && !strings.HasPrefix(f[1], "is") || strings.HasPrefix(f[0], "@"))
	}
	for i := 0; i < len(lines); i++ {
		if !isHeader(lines[i]) {
			out = append(out, lines[i])
			continue
		}
		for i+1 < len(lines) && (isRow(lines[i+1]) || lines[i+1] == "" || isHeader(lines[i+1])) {
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
