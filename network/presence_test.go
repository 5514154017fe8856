package network

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"p2pchat/network/internal/store"
)

// The rules of presence, on a clock the test moves: online while a
// connection is open and for onlineWindow after anything from the friend;
// last seen written at most once per seenWriteEvery while frames come, at
// once when a connection closes, and when the node stops.
func TestPresenceRules(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	stored := t0.Add(-3 * time.Hour)
	type step struct {
		at     time.Duration // after t0
		ev     Event         // nil: only look
		flush  bool          // the node stops
		online bool
		last   time.Duration // after t0; -1 for never seen
	}
	never := time.Duration(-1)
	for _, tc := range []struct {
		name   string
		stored bool // bob was last seen at stored in an earlier run
		steps  []step
		writes []time.Duration // the last-seen times written, after t0
	}{
		{
			name:  "never seen",
			steps: []step{{at: 0, last: never}},
		},
		{
			name:   "seen in an earlier run: not online until heard from",
			stored: true,
			steps:  []step{{at: 0, last: -3 * time.Hour}},
		},
		{
			name:   "an open connection is online however idle",
			stored: true,
			steps: []step{
				{at: 0, ev: ConnUp{Friend: "bob", Inbound: true}, online: true, last: 0},
				{at: time.Hour, online: true, last: time.Hour},
				{at: time.Hour + time.Second, ev: ConnDown{Friend: "bob", Inbound: true}, online: true, last: time.Hour + time.Second},
				{at: time.Hour + 4*time.Minute, online: true, last: time.Hour + time.Second},
				{at: time.Hour + 6*time.Minute, last: time.Hour + time.Second},
			},
			writes: []time.Duration{0, time.Hour + time.Second},
		},
		{
			name: "frames are written at most once a minute",
			steps: []step{
				{at: 0, ev: ConnUp{Friend: "bob"}, online: true, last: 0},
				{at: 10 * time.Second, ev: MessageDelivered{To: "bob"}, online: true, last: 10 * time.Second},
				{at: 50 * time.Second, ev: MessageReceived{From: "bob"}, online: true, last: 50 * time.Second},
				{at: 61 * time.Second, ev: MessageReceived{From: "bob"}, online: true, last: 61 * time.Second},
				{at: 70 * time.Second, ev: MessageReceived{From: "bob"}, online: true, last: 70 * time.Second},
				{at: 80 * time.Second, flush: true, online: true, last: 80 * time.Second},
			},
			writes: []time.Duration{0, 61 * time.Second, 80 * time.Second},
		},
		{
			name: "stopping writes what was heard since the last write",
			steps: []step{
				{at: 0, ev: ConnUp{Friend: "bob"}, online: true, last: 0},
				{at: time.Second, ev: ConnDown{Friend: "bob"}, online: true, last: time.Second},
				{at: 2 * time.Second, ev: ConnUp{Friend: "bob", Inbound: true}, online: true, last: 2 * time.Second},
				{at: 3 * time.Second, ev: ConnDown{Friend: "bob", Inbound: true}, online: true, last: 3 * time.Second},
				{at: 20 * time.Second, flush: true, online: true, last: 3 * time.Second},
			},
			writes: []time.Duration{0, time.Second, 3 * time.Second},
		},
		{
			name:   "a replay of a message from an earlier run is not hearing from them",
			stored: true,
			steps: []step{
				{at: 0, ev: MessageReceived{From: "bob", replayed: true}, last: -3 * time.Hour},
				{at: time.Second, flush: true, last: -3 * time.Hour},
			},
		},
		{
			name: "another friend's events",
			steps: []step{
				{at: 0, ev: ConnUp{Friend: "carol"}, last: never},
			},
			writes: nil,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0
			var writes []time.Duration
			last := map[string]time.Time{}
			if tc.stored {
				last["bob"] = stored
			}
			p := newPresence(last, func(friend string, at time.Time) {
				if friend == "bob" {
					writes = append(writes, at.Sub(t0))
				}
			})
			p.now = func() time.Time { return now }
			for i, s := range tc.steps {
				now = t0.Add(s.at)
				if s.ev != nil {
					p.saw(s.ev)
				}
				if s.flush {
					p.flush()
				}
				online, seen := p.status("bob")
				want := time.Time{}
				if s.last != never {
					want = t0.Add(s.last)
				}
				if online != s.online || !seen.Equal(want) {
					t.Errorf("step %d (%v, %T): online %v, last seen %v; want %v, %v", i, s.at, s.ev, online, seen, s.online, want)
				}
			}
			if !slices.Equal(writes, tc.writes) {
				t.Errorf("wrote last seen at %v, want %v", writes, tc.writes)
			}
		})
	}
}

// A friend is online as soon as a connection with them is up, whichever
// side dialled; one we never heard from is never seen.
func TestFriendIsOnlineByAConnectionEitherWay(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob", "carol")
	alice := startNode(t, tab, "alice")
	bob := startNode(t, tab, "bob")
	before := time.Now()
	send(t, alice, "bob", "hi")
	waitFor[MessageReceived](t, bob, nil)
	waitFor[MessageDelivered](t, alice, nil)
	for _, tc := range []struct {
		node         *Node
		friend       string
		online       bool
		seen         bool
		wantInbound  int
		wantOutbound bool
	}{
		{alice, "bob", true, true, 0, true}, // alice dialled bob
		{bob, "alice", true, true, 1, false},
		{alice, "carol", false, false, 0, false},
	} {
		st := statusOf(t, tc.node, tc.friend)
		if st.Online != tc.online || st.LastSeen.IsZero() == tc.seen {
			t.Errorf("%s's status of %s: online %v, last seen %v; want online %v, seen %v", tc.node.Name(), tc.friend, st.Online, st.LastSeen, tc.online, tc.seen)
		}
		if tc.seen && st.LastSeen.Before(before) {
			t.Errorf("%s's status of %s: last seen %v, before the connection", tc.node.Name(), tc.friend, st.LastSeen)
		}
		if st.Inbound != tc.wantInbound || st.Connected != tc.wantOutbound {
			t.Errorf("%s's status of %s: %d inbound, connected %v; want %d, %v", tc.node.Name(), tc.friend, st.Inbound, st.Connected, tc.wantInbound, tc.wantOutbound)
		}
	}
}

func statusOf(t *testing.T, n *Node, friend string) FriendStatus {
	t.Helper()
	for _, st := range n.Status() {
		if st.Name == friend {
			return st
		}
	}
	t.Fatalf("%s has no status for %s", n.Name(), friend)
	return FriendStatus{}
}

// Last seen is kept in the store: after a restart, a friend who is gone
// shows when they were last seen, and is not online.
func TestLastSeenSurvivesRestart(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	dir := t.TempDir()
	db := openStoreIn(t, dir)
	alice := startNode(t, tab, "alice", withStore(db))
	bob := startNode(t, tab, "bob")
	send(t, bob, "alice", "hi")
	waitFor[MessageReceived](t, alice, nil)
	waitFor[MessageDelivered](t, bob, nil)
	bob.Close()
	waitFor(t, alice, func(e ConnDown) bool { return e.Friend == "bob" && e.Inbound })
	seen := statusOf(t, alice, "bob").LastSeen
	alice.Close()
	db.Close()

	db = openStoreIn(t, dir)
	alice = startNode(t, tab, "alice", withStore(db))
	st := statusOf(t, alice, "bob")
	if st.Online || !st.LastSeen.Equal(seen.Truncate(time.Millisecond)) {
		t.Errorf("after a restart, bob is online %v, last seen %v; want offline, last seen %v", st.Online, st.LastSeen, seen)
	}
}

// logRecorder is a slog.Handler that keeps every record's message and
// attributes, and logs them to the test, so that a test can wait for a
// line.
type logRecorder struct {
	t     *testing.T
	attrs []slog.Attr
	lines *recordedLines
}

type recordedLines struct {
	mu      sync.Mutex
	lines   []recordedLine
	changed chan struct{} // closed and replaced at every line
}

type recordedLine struct {
	at    time.Time
	msg   string
	attrs map[string]slog.Value
}

func newLogRecorder(t *testing.T) *logRecorder {
	return &logRecorder{t: t, lines: &recordedLines{changed: make(chan struct{})}}
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l := recordedLine{at: r.Time, msg: r.Message, attrs: map[string]slog.Value{}}
	var b strings.Builder
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		l.attrs[a.Key] = a.Value
		b.WriteString(" " + a.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.t.Logf("%s", b.String())
	h.lines.mu.Lock()
	defer h.lines.mu.Unlock()
	h.lines.lines = append(h.lines.lines, l)
	close(h.lines.changed)
	h.lines.changed = make(chan struct{})
	return nil
}

func (h *logRecorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecorder{t: h.t, attrs: append(slices.Clone(h.attrs), as...), lines: h.lines}
}

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// wait waits for a line that ok accepts, and returns it.
func (h *logRecorder) wait(t *testing.T, within time.Duration, what string, ok func(recordedLine) bool) recordedLine {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	seen := 0
	for {
		h.lines.mu.Lock()
		lines, changed := h.lines.lines, h.lines.changed
		h.lines.mu.Unlock()
		for ; seen < len(lines); seen++ {
			if ok(lines[seen]) {
				return lines[seen]
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("no log line %s within %v", what, within)
		}
	}
}

func (h *logRecorder) count(ok func(recordedLine) bool) int {
	h.lines.mu.Lock()
	defer h.lines.mu.Unlock()
	n := 0
	for _, l := range h.lines.lines {
		if ok(l) {
			n++
		}
	}
	return n
}

func withLogger(h slog.Handler) func(*Config) {
	return func(c *Config) { c.Logger = slog.New(h) }
}

func msgIs(msg string) func(recordedLine) bool {
	return func(l recordedLine) bool { return l.msg == msg }
}

// When alice starts again, she tells bob she is back, and bob sends what he
// queued for her at once: not after his backoff, which has reached its cap.
func TestAnnounceFlushesTheQueueDuringALongBackoff(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	dir := t.TempDir()
	aliceID := newIdentity(t, "alice")
	known, err := LoadKnownPeers(filepath.Join(t.TempDir(), "known_peers"))
	if err != nil {
		t.Fatal(err)
	}
	sameAlice := func(c *Config) { c.Identity, c.KnownPeers = aliceID, known }
	db := openStoreIn(t, dir)
	alice := startNode(t, tab, "alice", withStore(db), sameAlice)
	bobLog := newLogRecorder(t)
	bob := startNode(t, tab, "bob", withLogger(bobLog))
	send(t, alice, "bob", "see you")
	waitFor[MessageReceived](t, bob, nil)
	waitFor[MessageDelivered](t, alice, nil)
	alice.Close()
	db.Close()

	// Bob writes while alice is gone, and tries until his backoff is at
	// its cap: the next try is 8 s away at least (10 s, less the jitter).
	send(t, bob, "alice", "while you were away")
	capped := func(l recordedLine) bool {
		v, ok := l.attrs["retry_in"]
		return l.msg == "cannot reach friend" && ok && v.Duration() >= time.Duration(float64(retryMax)*(1-retryJitter))
	}
	// 0.25 + 0.5 + 1 + 2 + 4 + 8 s of backoff before it, give or take 20 %.
	capLine := bobLog.wait(t, 30*time.Second, "of a backoff at its cap", capped)
	nextTry := capLine.at.Add(capLine.attrs["retry_in"].Duration())

	db = openStoreIn(t, dir)
	aliceLog := newLogRecorder(t)
	alice = startNode(t, tab, "alice", withStore(db), sameAlice, withLogger(aliceLog))
	got := waitFor(t, alice, func(m MessageReceived) bool { return m.Text == "while you were away" })
	if now := time.Now(); !now.Before(nextTry) {
		t.Errorf("received %q %v after bob's next try was due", got.Text, now.Sub(nextTry))
	}
	bobLog.wait(t, waitTimeout, "saying bob's queue went out because alice connected", msgIs("friend connected to us: sending what waits now, not after the backoff"))

	// Bob's own connection to alice is open now: alice closes the one
	// that said she is back, and one connection stays, not two.
	hello := waitFor(t, bob, func(e ConnUp) bool { return e.Friend == "alice" && e.Inbound })
	aliceLog.wait(t, waitTimeout, "saying alice closed it", msgIs("the friend connected to us: closing the connection that said we are back"))
	waitFor(t, bob, func(e ConnDown) bool { return e.Friend == "alice" && e.Inbound && e.Addr == hello.Addr })
}

// A friend already connected to us when we would say we are back knows it:
// no connection of ours is opened for it.
func TestNoAnnounceToAFriendConnectedToUs(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	// Alice has more unshown messages from bob than her events hold: at
	// start she replays them before she looks at bob's outbox, and waits
	// while nobody reads her events.
	db := openStore(t)
	var in []store.In
	stream := store.NewStreamID()
	for i := range eventBuffer + 10 {
		in = append(in, store.In{Stream: stream, Seq: uint64(i + 1), Text: fmt.Sprint("old ", i), Sent: time.Now()})
	}
	if err := db.AddIn("bob", in, time.Now()).Wait(); err != nil {
		t.Fatal(err)
	}
	bob := startNode(t, tab, "bob")
	aliceLog := newLogRecorder(t)
	alice := startNode(t, tab, "alice", withStore(db), withLogger(aliceLog))
	send(t, bob, "alice", "hi")
	deadline := time.Now().Add(waitTimeout)
	for statusOf(t, alice, "bob").Inbound == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("bob's connection not up at alice within %v", waitTimeout)
		}
		time.Sleep(time.Millisecond) // polling Status, which reports no change
	}
	waitFor(t, alice, func(m MessageReceived) bool { return m.Text == "hi" }) // reads the replay too
	aliceLog.wait(t, waitTimeout, "saying alice did not say she is back", msgIs("not saying we are back: the friend is connected to us"))
	if n := aliceLog.count(msgIs("said we are back")); n != 0 {
		t.Errorf("alice said she is back %d times, to a friend connected to her", n)
	}
}

// At start, a node says it is back to the friends it has talked with
// (a message recorded, or an identity pinned by the table or on first use),
// and to no one else.
func TestAnnounceOnlyToFriendsTalkedWith(t *testing.T) {
	checkNoLeaks(t)
	ids := map[string]*Identity{}
	var rows []Friend
	for _, name := range []string{"alice", "bob", "carol", "dave", "erin"} {
		ids[name] = newIdentity(t, name)
		f := Friend{Name: name, Host: "127.0.0.1", Port: freePort(t)}
		if name == "carol" {
			f.ID = ids[name].ID // pinned by the table
		}
		rows = append(rows, f)
	}
	tab, err := NewTable(rows)
	if err != nil {
		t.Fatal(err)
	}
	// Alice has a message from bob, and dave's identity pinned on first use.
	db := openStore(t)
	in := []store.In{{Stream: store.NewStreamID(), Seq: 1, Text: "old news", Sent: time.Now()}}
	if err := db.AddIn("bob", in, time.Now()).Wait(); err != nil {
		t.Fatal(err)
	}
	db.MarkShown("bob", in[0].Row)
	knownFile := filepath.Join(t.TempDir(), "known_peers")
	if err := os.WriteFile(knownFile, []byte("dave "+ids["dave"].ID.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	known, err := LoadKnownPeers(knownFile)
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]*Node{}
	for _, name := range []string{"bob", "carol", "dave", "erin"} {
		nodes[name] = startNode(t, tab, name, func(c *Config) { c.Identity = ids[name] })
	}
	aliceLog := newLogRecorder(t)
	startNode(t, tab, "alice", withStore(db), withLogger(aliceLog), func(c *Config) { c.Identity, c.KnownPeers = ids["alice"], known })

	for _, tc := range []struct {
		friend    string
		announced bool
	}{
		{"bob", true},   // a message with bob
		{"carol", true}, // pinned by the table
		{"dave", true},  // pinned on first use
		{"erin", false}, // never talked with
	} {
		t.Run(tc.friend, func(t *testing.T) {
			if !tc.announced {
				aliceLog.wait(t, waitTimeout, "saying alice never talked with "+tc.friend, func(l recordedLine) bool {
					return l.msg == "never talked with: not saying we are back" && l.attrs["friend"].String() == tc.friend
				})
				if st := statusOf(t, nodes[tc.friend], "alice"); !st.LastSeen.IsZero() || st.Inbound != 0 {
					t.Errorf("%s saw alice: %+v", tc.friend, st)
				}
				return
			}
			waitFor(t, nodes[tc.friend], func(e ConnUp) bool { return e.Friend == "alice" && e.Inbound })
			if st := statusOf(t, nodes[tc.friend], "alice"); !st.Online {
				t.Errorf("%s's status of alice after she said she is back: %+v, want online", tc.friend, st)
			}
		})
	}
}
