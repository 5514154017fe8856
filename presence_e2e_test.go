package main

// Who is online: /who and /peers in plain words, last seen kept across a
// restart, and a friend's queue going out as soon as we start, because we
// tell the friends we talked with that we are back.

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// ask sends a command and waits for a line of its answer that has every
// one of parts, in order, and returns it.
func (p *process) ask(t *testing.T, command string, parts ...string) string {
	t.Helper()
	from := len(p.stderr.snapshot())
	p.send(t, command)
	has := func(l string) bool { return matches(l, parts) }
	lines := p.stderr.wait(t, command+" to answer "+strings.Join(parts, " … "), func(lines []string) bool {
		return slices.ContainsFunc(lines[from:], has)
	})
	return lines[from+slices.IndexFunc(lines[from:], has)]
}

func TestWhoAndPeersSayWhoIsOnline(t *testing.T) {
	c := newChat(t, "user_1", "user_2", "user_3") // user_3 never runs
	u1 := c.startAs(t, "user_1")
	u1.ask(t, "/who", "Nobody is online now.")

	// user_2 only starts: it says it is back, and user_1 hears it.
	u2 := c.startAs(t, "user_2")
	log := watchLog(t, filepath.Join(u1.dataDir, "p2pchat.log"))
	log.waitCount(t, "user_2's connection", func(l string) bool {
		return strings.Contains(l, `msg="inbound connection up"`) && strings.Contains(l, "friend=user_2")
	}, 1)
	u1.ask(t, "/who", "Online now: user_2")
	u1.ask(t, "/peers", "FRIEND", "ADDRESS", "SEEN", "WAITING")
	u1.ask(t, "/peers", "user_2", c.addr("user_2"), "online", "0")
	u1.ask(t, "/peers", "user_3", c.addr("user_3"), "never seen", "0")

	// Last seen survives user_1's restart; after it, user_2 is gone and
	// not online.
	u2.send(t, "/quit")
	if code := u2.wait(t); code != 0 {
		t.Fatalf("user_2 exited with status %d", code)
	}
	u1.send(t, "/quit")
	if code := u1.wait(t); code != 0 {
		t.Fatalf("user_1 exited with status %d", code)
	}
	u1 = c.startAs(t, "user_1")
	u1.ask(t, "/peers", "user_2", "last seen just now", "0")
	u1.ask(t, "/peers", "user_3", "never seen", "0")
	u1.ask(t, "/who", "Nobody is online now.")
}

// matches reports whether l holds every one of parts, in order.
func matches(l string, parts []string) bool {
	for _, p := range parts {
		i := strings.Index(l, p)
		if i < 0 {
			return false
		}
		l = l[i+len(p):]
	}
	return true
}

// A message queued for a friend who is away goes out as soon as the friend
// starts, long before the sender's next try: the friend says it is back.
func TestQueueGoesOutWhenTheFriendStarts(t *testing.T) {
	c := newChat(t, "user_1", "user_2")
	u1 := c.startAs(t, "user_1")
	u1.send(t, "user_2/are you there?")
	u1.stderr.waitLine(t, "user_2 is offline: queued")

	// Wait until user_1 tries again no sooner than in 4 s.
	const long = 4 * time.Second
	retryIn := regexp.MustCompile(`retry_in=(\S+)`)
	log := watchLog(t, filepath.Join(u1.dataDir, "p2pchat.log"))
	log.waitCount(t, "a backoff of "+long.String(), func(l string) bool {
		m := retryIn.FindStringSubmatch(l)
		if !strings.Contains(l, `msg="cannot reach friend"`) || m == nil {
			return false
		}
		d, err := time.ParseDuration(m[1])
		return err == nil && d >= long
	}, 1)
	started := time.Now()
	u2 := c.startAs(t, "user_2")
	u2.stdout.waitLine(t, messageFrom("user_1", "are you there?"))
	if took := time.Since(started); took >= long {
		t.Errorf("the message came %v after user_2 started, not before user_1's next try", took)
	}
	log.waitCount(t, "user_1 to say user_2's connection sent the queue", func(l string) bool {
		return strings.Contains(l, `msg="friend connected to us: sending what waits now, not after the backoff"`)
	}, 1)
	u1.stderr.waitLine(t, `Delivered to user_2: "are you there?"`)
}
