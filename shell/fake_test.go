package shell_test

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"p2pchat/network"
	"p2pchat/shell"
)

// fakeNet is a shell.Network for unit tests of the shell's Run loop: it
// records what the shell asks of it and answers with canned results. Its
// canned fields (sendErr, history, historyErr, id, forgetErr, onMarkShown)
// are set before Run starts and not changed after; status may be changed
// while Run runs, with setStatus. What it records is behind mu, and every
// record notifies changes, so that a test can wait for a call while Run
// runs on another goroutine.
type fakeNet struct {
	events  chan network.Event
	changes *changes

	// Canned results.
	sendErr    error                             // returned by every Send but the barrier's
	history    map[string][]network.HistoryEntry // returned by History, by friend
	groupLog   map[string][]network.GroupEntry   // returned by GroupHistory, by group
	historyErr error                             // returned by History instead, if set
	id         network.ID                        // returned by ID
	forgetErr  error                             // returned by Forget
	acceptErr  error                             // returned by Accept

	// onMarkShown, if set, is called (on Run's goroutine) by MarkShown
	// before the call is recorded.
	onMarkShown func(m network.MessageReceived)

	mu          sync.Mutex
	status      []network.FriendStatus // returned by Status
	statusCalls int
	sends       []fakeSend
	barriers    int // Sends of barrierText seen
	histories   []fakeHistoryCall
	forgets     []string
	accepts     []string // "NAME ID"
	shown       []network.MessageReceived
}

var _ shell.Network = (*fakeNet)(nil)

type fakeSend struct{ to, text string }

type fakeHistoryCall struct {
	friend string
	n      int
}

// barrierText prefixes the text of the sends that a test types only to know
// that Run has handled everything before them (see runHarness.barrier).
// fakeNet counts them instead of recording them.
const barrierText = "fake-barrier "

// newFakeNet returns a fake whose Events channel is unbuffered: push returns
// once Run has taken the event. buffered events are queued on a buffered
// channel first, for a test that needs Run to find them all waiting.
func newFakeNet(c *changes, buffered ...network.Event) *fakeNet {
	f := &fakeNet{changes: c, history: map[string][]network.HistoryEntry{}}
	if len(buffered) > 0 {
		f.events = make(chan network.Event, len(buffered))
		for _, ev := range buffered {
			f.events <- ev
		}
	} else {
		f.events = make(chan network.Event)
	}
	return f
}

func (f *fakeNet) Send(to, text string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.changes.notify()
	if strings.HasPrefix(text, barrierText) {
		f.barriers++
		return 0, nil
	}
	f.sends = append(f.sends, fakeSend{to, text})
	if f.sendErr != nil {
		return 0, f.sendErr
	}
	return uint64(len(f.sends)), nil
}

// SendGroup records the send as one to "@group" and answers like Send.
func (f *fakeNet) SendGroup(group, text string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.changes.notify()
	f.sends = append(f.sends, fakeSend{"@" + group, text})
	if f.sendErr != nil {
		return nil, f.sendErr
	}
	return nil, nil
}

func (f *fakeNet) Status() []network.FriendStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.changes.notify()
	f.statusCalls++
	return append([]network.FriendStatus(nil), f.status...)
}

// setStatus changes what Status returns.
func (f *fakeNet) setStatus(st []network.FriendStatus) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.status = append([]network.FriendStatus(nil), st...)
}

func (f *fakeNet) Events() <-chan network.Event { return f.events }

func (f *fakeNet) ID() network.ID { return f.id }

func (f *fakeNet) Forget(name string) (network.ID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.changes.notify()
	f.forgets = append(f.forgets, name)
	if f.forgetErr != nil {
		return network.ID{}, f.forgetErr
	}
	return f.id, nil
}

func (f *fakeNet) Accept(name string, id network.ID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.changes.notify()
	f.accepts = append(f.accepts, name+" "+id.String())
	return f.acceptErr
}

func (f *fakeNet) accepted() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.accepts)
}

func (f *fakeNet) History(friend string, n int) ([]network.HistoryEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.changes.notify()
	f.histories = append(f.histories, fakeHistoryCall{friend, n})
	if f.historyErr != nil {
		return nil, f.historyErr
	}
	h := f.history[friend]
	if len(h) > n {
		h = h[len(h)-n:]
	}
	return append([]network.HistoryEntry(nil), h...), nil
}

// GroupHistory returns the last n of groupLog[group], or historyErr.
func (f *fakeNet) GroupHistory(group string, n int) ([]network.GroupEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.changes.notify()
	f.histories = append(f.histories, fakeHistoryCall{"@" + group, n})
	if f.historyErr != nil {
		return nil, f.historyErr
	}
	h := f.groupLog[group]
	if len(h) > n {
		h = h[len(h)-n:]
	}
	return append([]network.GroupEntry(nil), h...), nil
}

func (f *fakeNet) MarkShown(m network.MessageReceived) {
	if f.onMarkShown != nil {
		f.onMarkShown(m)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.changes.notify()
	f.shown = append(f.shown, m)
}

// push hands ev to Run, failing the test if Run does not take it (or, on a
// buffered channel, if there is no room) in time.
func (f *fakeNet) push(t *testing.T, ev network.Event) {
	t.Helper()
	timer := time.NewTimer(fakeWait)
	defer timer.Stop()
	select {
	case f.events <- ev:
	case <-timer.C:
		t.Fatalf("Run did not take the event %#v within %v", ev, fakeWait)
	}
}

// Snapshots of what was recorded.

func (f *fakeNet) sent() []fakeSend {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeSend(nil), f.sends...)
}

func (f *fakeNet) statusCalled() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.statusCalls
}

func (f *fakeNet) barriersSeen() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.barriers
}

func (f *fakeNet) historyCalls() []fakeHistoryCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeHistoryCall(nil), f.histories...)
}

func (f *fakeNet) forgotten() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.forgets...)
}

func (f *fakeNet) markedShown() []network.MessageReceived {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]network.MessageReceived(nil), f.shown...)
}

// fakeWait bounds every wait of these unit tests. They take milliseconds;
// the bound only turns a hang into a failure.
const fakeWait = 5 * time.Second

// changes lets a test wait for something another goroutine does: whatever
// records a change calls notify, and the waiter, between two looks at its
// condition, waits on the channel from wait.
type changes struct {
	mu sync.Mutex
	ch chan struct{}
}

func newChanges() *changes { return &changes{ch: make(chan struct{})} }

// wait returns a channel closed at the next notify.
func (c *changes) wait() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ch
}

func (c *changes) notify() {
	c.mu.Lock()
	defer c.mu.Unlock()
	close(c.ch)
	c.ch = make(chan struct{})
}

// waitFor waits until cond holds, looking again at every change, and fails
// the test after fakeWait.
func waitFor(t *testing.T, c *changes, what string, cond func() bool) {
	t.Helper()
	timer := time.NewTimer(fakeWait)
	defer timer.Stop()
	for {
		ch := c.wait() // before looking, so that no change is missed
		if cond() {
			return
		}
		select {
		case <-ch:
		case <-timer.C:
			t.Fatalf("waited %v for %s", fakeWait, what)
		}
	}
}

// syncBuffer is an io.Writer that Run writes to while the test reads it.
type syncBuffer struct {
	changes *changes
	mu      sync.Mutex
	b       bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	defer b.changes.notify()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// lines returns what was written, one element per line, without the
// newlines.
func (b *syncBuffer) lines() []string {
	s := b.String()
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}
