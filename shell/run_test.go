package shell_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"p2pchat/network"
	"p2pchat/shell"
)

// Unit tests of Run with the plain UI and a fakeNet: what typed lines ask of
// the network, and what network events print. They run in milliseconds;
// pty_test.go covers the terminal with the real program.

// runHarness is one Run of a shell for alice, whose friends are bob and
// carol, on a fakeNet.
type runHarness struct {
	t        *testing.T
	net      *fakeNet
	changes  *changes
	out, err *syncBuffer
	in       *io.PipeWriter // nil when the input was given as a reader

	barriers int                // typed so far
	cancel   context.CancelFunc // cancels Run's context
	done     chan struct{}
	runErr   error // once done is closed
}

var runFriends = []string{"bob", "carol"}

type runOptions struct {
	greeting string
	input    io.Reader           // instead of a pipe the test types into
	setup    func(h *runHarness) // sets the fake's canned results, before Run starts
	buffered []network.Event     // waiting on the events channel when Run starts
	groups   []network.Group     // the table's groups
	settings shell.Settings
	save     func(shell.Settings) error // Config.SaveSettings
}

// startRun starts Run; the test's cleanup stops it and checks that it
// returned nil and that nothing it wrote holds a raw control character.
func startRun(t *testing.T, o runOptions) *runHarness {
	t.Helper()
	c := newChanges()
	h := &runHarness{
		t:       t,
		net:     newFakeNet(c, o.buffered...),
		changes: c,
		out:     &syncBuffer{changes: c},
		err:     &syncBuffer{changes: c},
		done:    make(chan struct{}),
	}
	if o.setup != nil {
		o.setup(h)
	}
	in := o.input
	if in == nil {
		var r *io.PipeReader
		r, h.in = io.Pipe()
		in = r
	}
	sh, err := shell.New(shell.Config{
		Name:         "alice",
		Friends:      runFriends,
		Groups:       o.groups,
		Net:          h.net,
		In:           in,
		Out:          h.out,
		Err:          h.err,
		Greeting:     o.greeting,
		Settings:     o.settings,
		SaveSettings: o.save,
	})
	if err != nil {
		t.Fatalf("shell.New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		h.runErr = sh.Run(ctx)
		close(h.done)
		c.notify() // after done is closed, for a waiter to see it
	}()
	t.Cleanup(func() {
		cancel()
		h.waitReturn()
		if h.in != nil {
			h.in.Close() // ends the plain UI's reader
		}
		if h.runErr != nil {
			t.Errorf("Run returned %v, want nil", h.runErr)
		}
		for _, b := range []struct {
			name string
			buf  *syncBuffer
		}{{"Out", h.out}, {"Err", h.err}} {
			if r, ok := rawControl(b.buf.String()); ok {
				t.Errorf("%s holds the raw character %U:\n%s", b.name, r, b.buf)
			}
		}
	})
	return h
}

// rawControl returns the first character in s that Sanitize would have
// neutralised, other than the newlines between lines.
func rawControl(s string) (rune, bool) {
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\n' || r == 0x7f || 0x80 <= r && r < 0xa0 ||
			r == 0x061c || r == 0x200e || r == 0x200f || 0x202a <= r && r <= 0x202e ||
			0x2066 <= r && r <= 0x2069 || r == 0x2028 || r == 0x2029 {
			return r, true
		}
	}
	return 0, false
}

// typeLine types one line.
func (h *runHarness) typeLine(line string) {
	h.t.Helper()
	if h.in == nil {
		h.t.Fatal("typeLine: this Run reads a fixed input")
	}
	if _, err := io.WriteString(h.in, line+"\n"); err != nil {
		h.t.Fatalf("typing %q: %v", line, err)
	}
}

// barrier returns once Run has handled every line typed and every event
// pushed before it: it types a message that fakeNet counts, and waits for
// the count. Run handles lines in order, and takes nothing new before it is
// done with the line or event in hand, and push returns once Run has taken
// the event.
func (h *runHarness) barrier() {
	h.t.Helper()
	h.barriers++
	h.typeLine(fmt.Sprintf("bob/%s%d", barrierText, h.barriers))
	want := h.barriers
	waitFor(h.t, h.changes, "Run to handle the lines typed", func() bool { return h.net.barriersSeen() >= want })
}

// waitReturn waits for Run to return.
func (h *runHarness) waitReturn() {
	h.t.Helper()
	waitFor(h.t, h.changes, "Run to return", h.returned)
}

func (h *runHarness) returned() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// waitLine waits for a line of buf that matches want.
func (h *runHarness) waitLine(name string, buf *syncBuffer, want []string) {
	h.t.Helper()
	waitFor(h.t, h.changes, fmt.Sprintf("a line %q on %s; it holds\n%s", want, name, buf), func() bool {
		for _, l := range buf.lines() {
			if matchLine(l, want) {
				return true
			}
		}
		return false
	})
}

// matchLine reports whether line holds each of parts, in order.
func matchLine(line string, parts []string) bool {
	for _, p := range parts {
		i := strings.Index(line, p)
		if i < 0 {
			return false
		}
		line = line[i+len(p):]
	}
	return true
}

// checkLines checks that buf holds exactly one line per element of want,
// each matching it.
func checkLines(t *testing.T, name string, buf *syncBuffer, want [][]string) {
	t.Helper()
	got := buf.lines()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = matchLine(got[i], want[i])
	}
	if !ok {
		t.Errorf("%s holds %d line(s):\n%s\nwant %d, holding in turn:\n%q", name, len(got), strings.Join(got, "\n"), len(want), want)
	}
}

// line is shorthand for the parts one line must hold, in order.
func line(parts ...string) []string { return parts }

var (
	idBob   = network.ID{1, 2, 3}
	idOther = network.ID{0xee, 0xdd}
	idAlice = network.ID{0xa1, 0x1c, 0xe}
	// A time that is not today, so that it prints with its date.
	past = time.Date(2024, 3, 1, 10, 0, 0, 0, time.UTC)
)

func TestRunTypedLines(t *testing.T) {
	longText := strings.Repeat("é", network.MaxMessageRunes+1)
	for _, tc := range []struct {
		name    string
		lines   []string
		sendErr error
		sends   []fakeSend
		errOut  [][]string
	}{
		{name: "message", lines: []string{"bob/hi"}, sends: []fakeSend{{"bob", "hi"}}},
		{
			name:  "messages in order, text as typed",
			lines: []string{"carol/one", "  bob / two/three é\t", "carol/" + strings.Repeat("x", network.MaxMessageRunes)},
			sends: []fakeSend{{"carol", "one"}, {"bob", " two/three é\t"}, {"carol", strings.Repeat("x", network.MaxMessageRunes)}},
		},
		{name: "blank lines", lines: []string{"", "   ", "\t"}},
		{name: "unknown friend", lines: []string{"dave/hi"}, errOut: [][]string{line(`unknown friend "dave": your friends are bob, carol`)}},
		{name: "oneself", lines: []string{"alice/hi"}, errOut: [][]string{line("you cannot send a message to yourself")}},
		{name: "empty message", lines: []string{"bob/"}, errOut: [][]string{line("empty message", "write something after the '/'")}},
		{name: "only spaces", lines: []string{"bob/  \t "}, errOut: [][]string{line("empty message")}},
		{name: "message too long", lines: []string{"bob/" + longText}, errOut: [][]string{line("message too long", "251 characters, at most 250", "nothing was sent")}},
		{name: "line too long for the reader", lines: []string{"bob/" + strings.Repeat("x", 70000)}, errOut: [][]string{line("line too long", "nothing was done with it")}},
		// Cut, the start of the line would be a command of its own.
		{name: "command too long for the reader", lines: []string{"/quit" + strings.Repeat(" ", 70000) + "x"}, errOut: [][]string{line("line too long", "nothing was done with it")}},
		{name: "forget too long for the reader", lines: []string{"/forget bob" + strings.Repeat(" ", 70000) + "carol"}, errOut: [][]string{line("line too long", "nothing was done with it")}},
		{name: "no slash", lines: []string{"hello bob"}, errOut: [][]string{line(`no "/" in that line`, "for example bob/hello")}},
		{name: "lone slash", lines: []string{"/"}, errOut: [][]string{line(`a lone "/" is not a command`)}},
		{name: "lone slash and spaces", lines: []string{"  /  "}, errOut: [][]string{line(`a lone "/" is not a command`)}},
		{name: "unknown command", lines: []string{"/frob bob"}, errOut: [][]string{line("unknown command /frob: /help lists the commands")}},
		{name: "unknown command sanitised", lines: []string{"/fr\x1b[2Job"}, errOut: [][]string{line(`unknown command /fr\x1b[2Job`)}},
		{
			name:    "send fails",
			lines:   []string{"bob/hi"},
			sendErr: errors.New("p2pchat is stopping"),
			sends:   []fakeSend{{"bob", "hi"}},
			errOut:  [][]string{line("not sent to bob: p2pchat is stopping")},
		},
		{
			name:   "errors do not stop the next line",
			lines:  []string{"dave/hi", "/", "bob/still here"},
			sends:  []fakeSend{{"bob", "still here"}},
			errOut: [][]string{line("unknown friend"), line("lone")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startRun(t, runOptions{setup: func(h *runHarness) { h.net.sendErr = tc.sendErr }})
			for _, l := range tc.lines {
				h.typeLine(l)
			}
			h.barrier()
			if got := h.net.sent(); !reflect.DeepEqual(got, tc.sends) {
				t.Errorf("sends %q, want %q", got, tc.sends)
			}
			checkLines(t, "Err", h.err, tc.errOut)
			checkLines(t, "Out", h.out, nil)
		})
	}
}

func TestRunEvents(t *testing.T) {
	bobPinnedFirst := &network.IdentityError{Name: "bob", Presented: idOther, Expected: idBob, Source: network.PinnedOnFirstUse}
	bobPinnedTable := &network.IdentityError{Name: "bob", Presented: idOther, Expected: idBob, Source: network.PinnedByTable}
	stranger := &network.IdentityError{Presented: idOther, Problem: "names nobody we know"}
	reach := func(err error) error { return &network.ReachError{Name: "bob", Addr: "127.0.0.1:4001", Err: err} }
	long := strings.Repeat("long ", 20)

	for _, tc := range []struct {
		name   string
		events []network.Event
		out    [][]string // lines on Out
		errOut [][]string // lines on Err
	}{
		{
			name:   "message received",
			events: []network.Event{network.MessageReceived{From: "bob", Seq: 7, Sent: past, Text: "hi"}},
			out:    [][]string{line("Message from bob: hi")},
		},
		{
			name:   "message received is sanitised",
			events: []network.Event{network.MessageReceived{From: "bob", Seq: 1, Text: "hi\x1b[2J\r\nyou\a\u202eevil\xff"}},
			out:    [][]string{line(`Message from bob: hi\x1b[2J\x0d\x0ayou\x07\u202eevil` + "\uFFFD")},
		},
		{
			name: "messages from two friends, in order",
			events: []network.Event{
				network.MessageReceived{From: "bob", Seq: 1, Text: "one"},
				network.MessageReceived{From: "carol", Seq: 1, Text: "two"},
				network.MessageReceived{From: "bob", Seq: 2, Text: "three"},
			},
			out: [][]string{line("Message from bob: one"), line("Message from carol: two"), line("Message from bob: three")},
		},
		{
			name:   "queued",
			events: []network.Event{network.MessageQueued{To: "bob", Seq: 3, Text: "hi", Waiting: 2, Err: reach(errors.New("connection refused"))}},
			errOut: [][]string{line("bob is offline: queued, 2 waiting (cannot reach bob at 127.0.0.1:4001: connection refused)")},
		},
		{
			name:   "queued without a reason",
			events: []network.Event{network.MessageQueued{To: "bob", Seq: 3, Text: "hi", Waiting: 1}},
			errOut: [][]string{line("bob is offline: queued, 1 waiting")},
		},
		{
			name:   "queued, the reason sanitised",
			events: []network.Event{network.MessageQueued{To: "bob", Waiting: 1, Err: reach(&network.RefusedError{Reason: "go \x1b[31maway"})}},
			errOut: [][]string{line("bob is offline", `refused: go \x1b[31maway`)},
		},
		{
			name:   "queued: the friend's identity is wrong, pinned on first use",
			events: []network.Event{network.MessageQueued{To: "bob", Waiting: 2, Err: reach(bobPinnedFirst)}},
			errOut: [][]string{line("WARNING: bob's address 127.0.0.1:4001: ", "presented identity "+idOther.String()+" as bob, but bob is pinned on first use to "+idBob.String(),
				"(message queued, 2 waiting)", "type /forget bob.")},
		},
		{
			name: "an identity warning is given once per identity",
			events: []network.Event{
				network.MessageQueued{To: "bob", Waiting: 1, Err: reach(bobPinnedFirst)},
				network.MessageQueued{To: "bob", Waiting: 2, Err: reach(bobPinnedFirst)},
				network.ConnRefused{Addr: "127.0.0.1:4001", Name: "bob", Err: bobPinnedFirst},
				network.MessageQueued{To: "bob", Waiting: 3, Err: reach(&network.IdentityError{Name: "bob", Presented: idAlice, Expected: idBob, Source: network.PinnedOnFirstUse})},
			},
			// Our connections to bob and bob's to us are told apart: each
			// is said once.
			errOut: [][]string{
				line("WARNING: bob's address", "presented identity "+idOther.String(), "(message queued, 1 waiting)"),
				line("WARNING: a connection from 127.0.0.1:4001", "presented identity "+idOther.String(), "(connection closed)"),
				line("WARNING: bob's address", "presented identity "+idAlice.String(), "(message queued, 3 waiting)"),
			},
		},
		{
			name:   "queued: the friend's identity is wrong, pinned by the table",
			events: []network.Event{network.MessageQueued{To: "bob", Waiting: 1, Err: reach(bobPinnedTable)}},
			errOut: [][]string{line("WARNING: bob's address 127.0.0.1:4001: ", "pinned by the table", "put it in the table.")},
		},
		{
			name: "delivered after waiting",
			events: []network.Event{
				network.MessageDelivered{To: "bob", Seq: 3, Text: "hi", Sent: past, WasQueued: true},
				network.MessageDelivered{To: "carol", Seq: 4, Text: long, Sent: past, WasQueued: true},
			},
			errOut: [][]string{
				line(`Delivered to bob: "hi" (written 2024-03-01 10:00)`),
				line(`Delivered to carol: "` + long[:39] + `…" (written 2024-03-01 10:00)`),
			},
		},
		{
			name: "carried",
			events: []network.Event{
				network.MessageReceived{From: "carol", Seq: 2, Sent: time.Now(), Text: "via", Via: "bob"},
				network.MessageReceived{From: "carol", Seq: 5, Sent: time.Now(), Text: "ahead", Via: "bob", AheadOfGap: true},
				network.MessageReceived{From: "carol", Seq: 3, Sent: time.Now(), Text: "late", Late: true},
				network.MessageCarried{To: "carol", Seq: 4, Text: "sealed", Via: "bob"},
				network.MessageCarried{To: "carol", Seq: 4, Text: "sealed", Via: "dave"},
				network.MessageDelivered{To: "carol", Seq: 4, Text: "sealed", Sent: past, Via: "bob"},
				network.CannotCarry{To: "dave", Err: errors.New("no card of theirs yet")},
				network.MailRefused{From: "carol", Via: "bob", Err: errors.New("mail does not verify")},
			},
			out: [][]string{
				line("Message from carol: via (via bob)"),
				line("Message from carol: ahead (via bob) (an earlier message from carol has not arrived yet)"),
				line("Message from carol: late (late)"),
			},
			errOut: [][]string{
				line(`carol cannot be reached: bob carries "sealed" to them, sealed`),
				line(`Delivered to carol (via bob): "sealed" (written 2024-03-01 10:00)`),
				line("Nobody can carry messages to dave yet: no card of theirs yet. They wait for the direct path."),
				line("WARNING: a sealed message said to be from carol, carried by bob, was altered or forged"),
			},
		},
		{
			name:   "delivered at once is quiet",
			events: []network.Event{network.MessageDelivered{To: "bob", Seq: 3, Text: "hi", Sent: past}},
		},
		{
			name: "failed",
			events: []network.Event{
				network.MessageFailed{To: "bob", Seq: 3, Text: "hi", Err: errors.New("disk I/O error")},
				network.MessageFailed{To: "carol", Seq: 4, Text: "there", Err: errors.New("disk full"), Written: true},
			},
			errOut: [][]string{
				line(`cannot record the message to bob ("hi"): disk I/O error; it was not sent`),
				line(`cannot record the message to carol ("there"): disk full; it is not kept, and carol may have received it`),
			},
		},
		{
			name:   "store failed and recovered",
			events: []network.Event{network.StoreFailed{Err: errors.New("disk full")}, network.StoreRecovered{}},
			errOut: [][]string{
				line("cannot record the messages friends send: disk full; they keep them and send them again once it works"),
				line("The message database records again."),
			},
		},
		{
			name: "receiving paused",
			events: []network.Event{
				network.ReceivingPaused{From: "bob", Limit: 1 << 30, Window: 24 * time.Hour, Until: time.Now().Add(time.Hour)},
				network.ReceivingPaused{From: "carol", Limit: 2500, Window: 3 * time.Second, Until: time.Now()},
			},
			errOut: [][]string{
				line("Receiving from bob is paused: bob sent more than 1 GiB in 24 h, the most one friend may cost on disk. It resumes by ", "; nothing is lost, bob keeps the messages until then."),
				line("Receiving from carol is paused: carol sent more than 2.44 KiB in 3s"),
			},
		},
		{
			name:   "identity pinned",
			events: []network.Event{network.IdentityPinned{Name: "bob", Addr: "127.0.0.1:4001", ID: idBob}},
			errOut: [][]string{line("First contact with bob: pinned identity "+idBob.String()+".", "what bob's /whoami shows")},
		},
		{
			name:   "connection refused",
			events: []network.Event{network.ConnRefused{Addr: "10.0.0.5:4000", Name: "mal\x1b[31mlory", Err: errors.New("bad hello")}},
			errOut: [][]string{line(`WARNING: refused a connection from 10.0.0.5:4000 claiming to be "mal\x1b[31mlory": bad hello`)},
		},
		{
			name:   "connection refused: a stranger's identity",
			events: []network.Event{network.ConnRefused{Addr: "10.0.0.5:4000", Err: stranger}},
			errOut: [][]string{line("WARNING: a connection from 10.0.0.5:4000: identity " + idOther.String() + ": names nobody we know (connection closed)")},
		},
		{
			name:   "connection refused: a friend's identity is wrong",
			events: []network.Event{network.ConnRefused{Addr: "10.0.0.5:4000", Name: "bob", Err: bobPinnedFirst}},
			errOut: [][]string{line("WARNING: a connection from 10.0.0.5:4000: ", "as bob", "(connection closed)", "type /forget bob.")},
		},
		{
			name:   "connection refused: our certificate rejected",
			events: []network.Event{network.ConnRefused{Addr: "10.0.0.5:4000", Err: fmt.Errorf("tls: %w", network.ErrCertRejected)}},
			errOut: [][]string{line("A connection from 10.0.0.5:4000 ended: tls: our certificate was refused")},
		},
		{
			name: "a burst of refusals from any hosts prints one line (the summary comes when the quiet period ends)",
			events: append(refusals("10.0.0.5", 50),
				network.ConnRefused{Addr: "[::1]:4000", Err: errors.New("no hello within 10s")}),
			errOut: [][]string{
				line("WARNING: refused a connection from 10.0.0.5:5000: bad hello 0"),
			},
		},
		{
			name: "connections up and down are quiet",
			events: []network.Event{
				network.ConnUp{Friend: "bob", Addr: "127.0.0.1:4001", ID: idBob},
				network.ConnDown{Friend: "bob", Addr: "127.0.0.1:4001", Err: network.ErrIdle},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startRun(t, runOptions{})
			var received []network.MessageReceived
			for _, ev := range tc.events {
				h.net.push(t, ev)
				if m, ok := ev.(network.MessageReceived); ok {
					received = append(received, m)
				}
			}
			h.barrier()
			checkLines(t, "Out", h.out, tc.out)
			checkLines(t, "Err", h.err, tc.errOut)
			// Each message arrived on its own, so each is marked shown.
			waitFor(t, h.changes, "the messages to be marked shown", func() bool { return len(h.net.markedShown()) >= len(received) })
			if got := h.net.markedShown(); !reflect.DeepEqual(got, received) {
				t.Errorf("marked shown %+v, want %+v", got, received)
			}
		})
	}
}

// refusals returns n refused connections from host, each from another port.
func refusals(host string, n int) []network.Event {
	var evs []network.Event
	for i := range n {
		evs = append(evs, network.ConnRefused{Addr: fmt.Sprintf("%s:%d", host, 5000+i), Err: fmt.Errorf("bad hello %d", i)})
	}
	return evs
}

// TestRunMarksShownAfterWriting: messages that Run finds waiting are written
// out together, and then the last of each friend's is marked shown; a long
// burst is cut every 128 messages.
func TestRunMarksShownAfterWriting(t *testing.T) {
	msg := func(from string, seq int) network.MessageReceived {
		return network.MessageReceived{From: from, Seq: uint64(seq), Text: fmt.Sprintf("%s %d", from, seq)}
	}
	for _, tc := range []struct {
		name   string
		events []network.MessageReceived
		shown  []network.MessageReceived // by friend, then in order
	}{
		{
			name:   "two friends",
			events: []network.MessageReceived{msg("bob", 1), msg("carol", 1), msg("bob", 2)},
			shown:  []network.MessageReceived{msg("bob", 2), msg("carol", 1)},
		},
		{
			name: "a long burst",
			events: func() (ms []network.MessageReceived) {
				for i := 1; i <= 130; i++ {
					ms = append(ms, msg("bob", i))
				}
				return ms
			}(),
			shown: []network.MessageReceived{msg("bob", 128), msg("bob", 130)},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buffered []network.Event
			for _, m := range tc.events {
				buffered = append(buffered, m)
			}
			var notOut []string // messages marked shown before they were written out
			h := startRun(t, runOptions{buffered: buffered, setup: func(h *runHarness) {
				h.net.onMarkShown = func(m network.MessageReceived) {
					if !strings.Contains(h.out.String(), "Message from "+m.From+": "+m.Text+"\n") {
						notOut = append(notOut, m.Text)
					}
				}
			}})
			waitFor(t, h.changes, "every message to be marked shown", func() bool { return len(h.net.markedShown()) >= len(tc.shown) })
			h.barrier()

			var want [][]string
			for _, m := range tc.events {
				want = append(want, line("Message from "+m.From+": "+m.Text))
			}
			checkLines(t, "Out", h.out, want)
			got := h.net.markedShown()
			// Within one batch, friends are marked in any order.
			slices.SortStableFunc(got, func(a, b network.MessageReceived) int {
				return cmp.Or(strings.Compare(a.From, b.From), cmp.Compare(a.Seq, b.Seq))
			})
			if !reflect.DeepEqual(got, tc.shown) {
				t.Errorf("marked shown %+v, want %+v", got, tc.shown)
			}
			if len(notOut) > 0 {
				t.Errorf("marked shown before written out: %q", notOut)
			}
		})
	}
}

func TestRunCommands(t *testing.T) {
	t1, t2, t3 := past, past.Add(time.Minute), past.Add(2*time.Minute)
	canned := []network.HistoryEntry{
		{Outgoing: true, Text: "hi", Sent: t1, At: t1, Delivered: true},
		{Text: "hey \x1b[2J", Sent: t2.Add(-time.Hour), At: t2},
		{Outgoing: true, Text: "later", Sent: t3, At: t3},
		{Outgoing: true, Text: "carried", Sent: t3, At: t3, CarriedBy: []string{"carol", "dave"}},
	}
	status := []network.FriendStatus{
		{Friend: network.Friend{Name: "bob", Host: "127.0.0.1", Port: 4001}, Connected: true, Idle: 3700 * time.Millisecond, Inbound: 1, Online: true, LastSeen: time.Now(), ID: idBob, Pinned: network.PinnedByTable, Card: true, Reachable: true, Carrying: 3},
		{Friend: network.Friend{Name: "carol", Host: "::1", Port: 4002}, Offline: true, Pending: 2, LastSeen: time.Now().Add(-3*time.Hour - time.Minute), Card: true, CarriedBy: []string{"bob"}},
		{Friend: network.Friend{Name: "dave", Host: "10.0.0.4", Port: 4003}, ID: idOther, Pinned: network.PinnedOnFirstUse},
		{Friend: network.Friend{Name: "erin", Host: "10.0.0.5", Port: 4004}, Online: true, LastSeen: time.Now().Add(-2 * time.Minute)},
	}
	for _, tc := range []struct {
		name      string
		setup     func(f *fakeNet)
		lines     []string
		errOut    [][]string
		histories []fakeHistoryCall
		forgets   []string
		accepts   []string
	}{
		{
			name:      "history",
			setup:     func(f *fakeNet) { f.history["bob"] = canned },
			lines:     []string{"/history bob"},
			histories: []fakeHistoryCall{{"bob", 20}},
			errOut: [][]string{
				line("2024-03-01 10:00  you → bob: hi  [delivered]"),
				line(`2024-03-01 10:01  bob → you: hey \x1b[2J`),
				line("2024-03-01 10:02  you → bob: later  [waiting]"),
				line("2024-03-01 10:02  you → bob: carried  [waiting; carried by carol, dave]"),
			},
		},
		{
			name:      "history N",
			setup:     func(f *fakeNet) { f.history["bob"] = canned },
			lines:     []string{"/history bob 2"},
			histories: []fakeHistoryCall{{"bob", 2}},
			errOut:    [][]string{line("you → bob: later  [waiting]"), line("you → bob: carried  [waiting; carried by carol, dave]")},
		},
		{
			name:      "history, none yet",
			lines:     []string{"/history carol"},
			histories: []fakeHistoryCall{{"carol", 20}},
			errOut:    [][]string{line("No messages with carol yet.")},
		},
		{
			name:      "history cannot be read",
			setup:     func(f *fakeNet) { f.historyErr = errors.New("database is locked") },
			lines:     []string{"/history bob"},
			histories: []fakeHistoryCall{{"bob", 20}},
			errOut:    [][]string{line("cannot read the history with bob: database is locked")},
		},
		{
			name:   "history: bad uses",
			lines:  []string{"/history", "/history bob 2 3", "/history dave", "/history bob 0", "/history bob x\x1b"},
			errOut: [][]string{line("usage: /history FRIEND [N]"), line("usage: /history FRIEND [N]"), line(`unknown friend "dave"`), line(`bad count "0"`), line(`bad count "x`)},
		},
		{
			name:  "peers",
			setup: func(f *fakeNet) { f.setStatus(status) },
			lines: []string{"/peers"},
			errOut: [][]string{
				line("2 message(s) to carol wait from before"), // the notice at start
				line("FRIEND", "ADDRESS", "SEEN", "WAITING"),
				line("bob", "127.0.0.1:4001", "online", "0"),
				line("carol", "[::1]:4002", "last seen 3 h ago", "2"),
				line("dave", "10.0.0.4:4003", "never seen", "0"),
				line("erin", "10.0.0.5:4004", "online", "0"),
				line(),
				line("FRIEND", "IDENTITY"),
				line("bob", idBob.String()+" (pinned by the table)"),
				line("carol", "not yet pinned"),
				line("dave", idOther.String()+" (pinned on first use)"),
				line("erin", "not yet pinned"),
				line(),
				line("FRIEND", "REACHED"),
				line("bob", "direct; carrying 3 message(s) for bob"),
				line("carol", "through bob; behind a NAT"),
				line("dave", "direct when there is something to send; no card yet, so nobody can carry for them"),
				line("erin", "direct when there is something to send; no card yet, so nobody can carry for them"),
				line(),
				line("GROUP", "MEMBERS"),
				line("@all", "every friend"),
			},
		},
		{
			name:  "who",
			setup: func(f *fakeNet) { f.setStatus(status) },
			lines: []string{"/who"},
			errOut: [][]string{
				line("2 message(s) to carol wait from before"),
				line("Online now: bob, erin"),
			},
		},
		{
			name:   "who: nobody",
			setup:  func(f *fakeNet) { f.setStatus(status[1:3]) },
			lines:  []string{"/who"},
			errOut: [][]string{line("2 message(s) to carol wait from before"), line("Nobody is online now.")},
		},
		{
			name:   "whoami",
			setup:  func(f *fakeNet) { f.id = idAlice },
			lines:  []string{"/whoami"},
			errOut: [][]string{line("You are alice, identity " + idAlice.String())},
		},
		{
			name:    "forget",
			lines:   []string{"/forget bob"},
			forgets: []string{"bob"},
			errOut:  [][]string{line("Forgot bob's identity ", "and closed its connections. A new identity for bob is not pinned by itself", "then /accept bob ID.")},
		},
		{
			name:    "accept",
			lines:   []string{"/accept bob " + idBob.String()},
			accepts: []string{"bob " + idBob.String()},
			errOut:  [][]string{line("Pinned identity " + idBob.String() + " for bob.")},
		},
		{
			name:    "accept fails",
			setup:   func(f *fakeNet) { f.acceptErr = errors.New("bob's identity is pinned to X: forget it first") },
			lines:   []string{"/accept bob " + idBob.String()},
			accepts: []string{"bob " + idBob.String()},
			errOut:  [][]string{line("bob's identity is pinned to X: forget it first")},
		},
		{
			name:   "accept: bad uses",
			lines:  []string{"/accept bob", "/accept bob not-an-id"},
			errOut: [][]string{line("usage: /accept NAME ID"), line(`bad identity "not-an-id"`)},
		},
		{
			name:    "forget fails",
			setup:   func(f *fakeNet) { f.forgetErr = errors.New("bob's identity is pinned by the \x1b[1mtable") },
			lines:   []string{"/forget bob"},
			forgets: []string{"bob"},
			errOut:  [][]string{line(`bob's identity is pinned by the \x1b[1mtable`)},
		},
		{
			name:   "forget: bad uses",
			lines:  []string{"/forget", "/forget bob carol"},
			errOut: [][]string{line("usage: /forget NAME"), line("usage: /forget NAME")},
		},
		{
			name:  "help",
			lines: []string{"/help"},
			errOut: [][]string{
				line("Write friend/message to send a message, for example bob/hello; a message holds at most 250 characters."),
				line("Write @group/message", "your groups are @all (every friend)."),
				line("/help", "show this help"),
				line("/peers", "list your friends"),
				line("/who", "the friends online now"),
				line("/history FRIEND [N]", "the last N (default 20)"),
				line("/whoami", "your name and identity"),
				line("/forget NAME", "forget the identity"),
				line("/accept NAME ID", "pin ID for NAME"),
				line("/to [FRIEND|@GROUP]", "send every line to FRIEND or @GROUP"),
				line("/time on|off", "start every line with the time"),
				line("/bell on|off", "ring the bell"),
				line("/quit", "leave p2pchat"),
				line("Keys: Tab completes", "Up and Down recall"),
				line("Ctrl-R searches", "Home and End", "Ctrl-L clears the screen"),
				line("Ctrl-C clears the line", "Ctrl-D on an empty line leaves."),
			},
		},
		{
			name:   "an unknown friend one name is near",
			lines:  []string{"/history carl", "/forget bobb", "/to caro", "/history dave"},
			errOut: [][]string{line(`unknown friend "carl": did you mean carol? (your friends are bob, carol)`), line(`unknown friend "bobb": did you mean bob?`), line(`unknown friend "caro": did you mean carol?`), line(`unknown friend "dave": your friends are bob, carol`)},
		},
		{
			name:   "an unknown command one command is near",
			lines:  []string{"/hlep", "/histroy bob", "/xyzzy"},
			errOut: [][]string{line("unknown command /hlep: did you mean /help? /help lists the commands"), line("unknown command /histroy: did you mean /history?"), line("unknown command /xyzzy: /help lists the commands")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startRun(t, runOptions{setup: func(h *runHarness) {
				if tc.setup != nil {
					tc.setup(h.net)
				}
			}})
			for _, l := range tc.lines {
				h.typeLine(l)
			}
			h.barrier()
			checkLines(t, "Err", h.err, tc.errOut)
			checkLines(t, "Out", h.out, nil)
			if got := h.net.historyCalls(); !reflect.DeepEqual(got, tc.histories) {
				t.Errorf("History calls %v, want %v", got, tc.histories)
			}
			if got := h.net.forgotten(); !reflect.DeepEqual(got, tc.forgets) {
				t.Errorf("Forget calls %q, want %q", got, tc.forgets)
			}
			if got := h.net.accepted(); !reflect.DeepEqual(got, tc.accepts) {
				t.Errorf("Accept calls %q, want %q", got, tc.accepts)
			}
			if got := h.net.sent(); len(got) > 0 {
				t.Errorf("sends %q, want none", got)
			}
		})
	}
}

func TestRunNoticesAtStart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		greeting string
		pending  map[string]int
		errOut   [][]string
	}{
		{name: "none"},
		{
			name:     "greeting",
			greeting: "Welcome, alice.",
			errOut:   [][]string{line("Welcome, alice.")},
		},
		{
			name:     "pending messages, after the greeting, in table order",
			greeting: "Welcome, alice.",
			pending:  map[string]int{"bob": 1, "carol": 3},
			errOut: [][]string{
				line("Welcome, alice."),
				line("1 message(s) to bob wait from before; they go out as soon as bob can be reached."),
				line("3 message(s) to carol wait from before; they go out as soon as carol can be reached."),
			},
		},
		{
			name:    "only friends with messages pending",
			pending: map[string]int{"carol": 2},
			errOut:  [][]string{line("2 message(s) to carol wait from before")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startRun(t, runOptions{greeting: tc.greeting, setup: func(h *runHarness) {
				h.net.setStatus(pending(tc.pending))
			}})
			h.barrier()
			checkLines(t, "Err", h.err, tc.errOut)
		})
	}
}

// TestRunQuit: /quit makes Run return nil, and what was typed after it is
// not acted on.
func TestRunQuit(t *testing.T) {
	for _, quit := range []string{"/quit", "  /quit  now"} {
		t.Run(quit, func(t *testing.T) {
			h := startRun(t, runOptions{input: strings.NewReader("bob/before\n" + quit + "\nbob/after\n")})
			h.waitReturn()
			if h.runErr != nil {
				t.Errorf("Run returned %v after %s, want nil", h.runErr, quit)
			}
			if got, want := h.net.sent(), []fakeSend{{"bob", "before"}}; !reflect.DeepEqual(got, want) {
				t.Errorf("sends %q, want %q", got, want)
			}
		})
	}
}

// TestRunEndOfInput: when the input ends, Run still shows what the network
// reports, until its context is done.
func TestRunEndOfInput(t *testing.T) {
	for _, tc := range []struct{ name, input string }{
		{"empty", ""},
		{"last line without a newline", "bob/one\ncarol/two"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startRun(t, runOptions{input: strings.NewReader(tc.input)})
			var want []fakeSend
			if tc.input != "" {
				want = []fakeSend{{"bob", "one"}, {"carol", "two"}}
			}
			waitFor(t, h.changes, "the lines to be sent", func() bool { return len(h.net.sent()) >= len(want) })
			// The end of the input waits for Run with the events: Run
			// picks either when both are ready, so by the end of these it
			// has (but for a chance of 2^-64) taken the end of the input.
			for range 64 {
				h.net.push(t, network.ConnUp{Friend: "bob", Addr: "127.0.0.1:4001", ID: idBob})
			}
			m := network.MessageReceived{From: "carol", Seq: 1, Text: "still there?"}
			h.net.push(t, m)
			h.net.push(t, network.StoreRecovered{}) // taken once m is shown
			h.waitLine("Out", h.out, line("Message from carol: still there?"))
			if h.returned() {
				t.Fatalf("Run returned %v at the end of the input", h.runErr)
			}
			if got := h.net.sent(); !reflect.DeepEqual(got, want) {
				t.Errorf("sends %q, want %q", got, want)
			}
			// The cleanup cancels the context: Run returns nil.
		})
	}
}

// TestRunEventsClosed: Run returns nil when the network closes its events,
// having written out what it showed.
func TestRunEventsClosed(t *testing.T) {
	m := network.MessageReceived{From: "bob", Seq: 1, Text: "bye"}
	h := startRun(t, runOptions{})
	h.net.push(t, m)
	close(h.net.events)
	h.waitReturn()
	if h.runErr != nil {
		t.Errorf("Run returned %v, want nil", h.runErr)
	}
	checkLines(t, "Out", h.out, [][]string{line("Message from bob: bye")})
	if got := h.net.markedShown(); !reflect.DeepEqual(got, []network.MessageReceived{m}) {
		t.Errorf("marked shown %+v, want %+v", got, m)
	}
}

// pushPolled pushes ev and waits for Run to ask Status again, as /quit does
// after each event while it waits for messages to be delivered.
func (h *runHarness) pushPolled(ev network.Event) {
	h.t.Helper()
	calls := h.net.statusCalled()
	h.net.push(h.t, ev)
	waitFor(h.t, h.changes, "Run to ask what waits", func() bool { return h.net.statusCalled() > calls })
}

// pending returns a status of alice's friends with messages pending.
func pending(n map[string]int) []network.FriendStatus {
	var st []network.FriendStatus
	for i, name := range runFriends {
		st = append(st, network.FriendStatus{Friend: network.Friend{Name: name, Host: "127.0.0.1", Port: 4001 + i}, Pending: n[name]})
	}
	return st
}

// TestRunQuitWaitsForPending: /quit with messages waiting for friends waits
// for them to be delivered, showing what comes meanwhile, and says what still
// waits when it stops waiting. (quitWait, the longest it waits, is not waited
// out here: it is 2 s.)
func TestRunQuitWaitsForPending(t *testing.T) {
	received := network.MessageReceived{From: "carol", Seq: 1, Text: "bye"}
	for _, tc := range []struct {
		name string
		// meanwhile happens once Run waits; then Run returns
		meanwhile func(t *testing.T, h *runHarness)
		errOut    [][]string
		out       [][]string
		shown     []network.MessageReceived
	}{
		{
			name: "delivered meanwhile",
			meanwhile: func(t *testing.T, h *runHarness) {
				h.pushPolled(received)
				h.net.setStatus(pending(map[string]int{"bob": 2}))
				h.pushPolled(network.MessageDelivered{To: "bob", Seq: 1, Text: "one", Sent: past, WasQueued: true})
				h.net.setStatus(pending(map[string]int{"bob": 1}))
				h.pushPolled(network.MessageDelivered{To: "bob", Seq: 2, Text: "two", Sent: past, WasQueued: true})
				h.net.setStatus(pending(nil))
				h.net.push(t, network.MessageDelivered{To: "bob", Seq: 3, Text: "three", Sent: past, WasQueued: true})
			},
			errOut: [][]string{
				line("3 message(s) to bob wait from before"),
				line(`Delivered to bob: "one"`),
				line(`Delivered to bob: "two"`),
				line(`Delivered to bob: "three"`),
			},
			out:   [][]string{line("Message from carol: bye")},
			shown: []network.MessageReceived{received},
		},
		{
			name: "stopped meanwhile",
			meanwhile: func(t *testing.T, h *runHarness) {
				h.net.setStatus(pending(map[string]int{"bob": 2, "carol": 1}))
				h.cancel()
			},
			errOut: [][]string{
				line("3 message(s) to bob wait from before"),
				line("3 messages wait (2 to bob, 1 to carol); they go out when you are both online."),
			},
		},
		{
			name: "one left",
			meanwhile: func(t *testing.T, h *runHarness) {
				h.net.setStatus(pending(map[string]int{"bob": 1}))
				h.cancel()
			},
			errOut: [][]string{
				line("3 message(s) to bob wait from before"),
				line("1 message waits (1 to bob); they go out when you are both online."),
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startRun(t, runOptions{setup: func(h *runHarness) { h.net.setStatus(pending(map[string]int{"bob": 3})) }})
			h.typeLine("/quit")
			// Status is asked at the start, and again by /quit.
			waitFor(t, h.changes, "/quit to ask what waits", func() bool { return h.net.statusCalled() >= 2 })
			if h.returned() {
				t.Fatalf("/quit with messages waiting returned at once (%v)", h.runErr)
			}
			tc.meanwhile(t, h)
			h.waitReturn()
			if h.runErr != nil {
				t.Errorf("Run returned %v, want nil", h.runErr)
			}
			checkLines(t, "Err", h.err, tc.errOut)
			checkLines(t, "Out", h.out, tc.out)
			if got := h.net.markedShown(); !reflect.DeepEqual(got, tc.shown) {
				t.Errorf("marked shown %+v, want %+v", got, tc.shown)
			}
		})
	}
}

// With piped input, a problem with a line names the line, so that a
// script's author finds it; problems that come from the network do not.
func TestRunNamesTheInputLine(t *testing.T) {
	h := startRun(t, runOptions{})
	h.typeLine("bob/fine")
	h.typeLine("nobody/hi")
	h.typeLine("")
	h.typeLine("/frob")
	h.barrier()
	h.waitLine("Err", h.err, []string{"line 2: ", `unknown friend "nobody"`})
	h.waitLine("Err", h.err, []string{"line 4: ", "unknown command /frob"})
	h.net.push(t, network.MessageFailed{To: "bob", Text: "x", Err: errors.New("disk full")})
	h.barrier()
	for _, l := range h.err.lines() {
		if strings.Contains(l, "disk full") && strings.HasPrefix(l, "line ") {
			t.Errorf("a problem from the network names an input line: %q", l)
		}
	}
}

// /to FRIEND sends every line to FRIEND until /to alone ends it.
func TestRunTalkTo(t *testing.T) {
	h := startRun(t, runOptions{})
	h.typeLine("/to carol")
	h.typeLine("see http://x")
	h.typeLine("bob/for bob")
	h.typeLine("/to")
	h.typeLine("no friend here")
	h.typeLine("/to dave")
	h.barrier()
	var got []fakeSend
	for _, s := range h.net.sent() {
		if !strings.Contains(s.text, barrierText) {
			got = append(got, s)
		}
	}
	want := []fakeSend{{to: "carol", text: "see http://x"}, {to: "bob", text: "for bob"}}
	if !slices.Equal(got, want) {
		t.Errorf("sent %+v, want %+v", got, want)
	}
	h.waitLine("Err", h.err, []string{"Every line now goes to carol"})
	h.waitLine("Err", h.err, []string{`line 5: no "/" in that line`})
	h.waitLine("Err", h.err, []string{`line 6: unknown friend "dave"`})
}

// TestRunSettings: /time starts every line with the time, /bell is taken,
// and each change is handed over to be kept; a change that cannot be kept
// still holds, and says so.
func TestRunSettings(t *testing.T) {
	stamp := `^\d\d:\d\d `
	for _, tc := range []struct {
		name    string
		initial shell.Settings
		saveErr error
		lines   []string
		saved   []shell.Settings
		errOut  []string // regular expressions
		out     []string
	}{
		{
			name:   "time on",
			lines:  []string{"/time on"},
			saved:  []shell.Settings{{Time: true}},
			errOut: []string{stamp + `Every line now starts with the time\.$`, stamp + `line \d: unknown friend "zed"`},
			out:    []string{stamp + `Message from bob: hi$`},
		},
		{
			name:    "time off",
			initial: shell.Settings{Time: true, Bell: true},
			lines:   []string{"/time off"},
			saved:   []shell.Settings{{Bell: true}},
			errOut:  []string{`^Lines no longer start with the time\.$`, `^line \d: unknown friend "zed"`},
			out:     []string{`^Message from bob: hi$`},
		},
		{
			name:    "kept from before",
			initial: shell.Settings{Time: true},
			errOut:  []string{stamp + `line \d: unknown friend "zed"`},
			out:     []string{stamp + `Message from bob: hi$`},
		},
		{
			name:    "bell",
			initial: shell.Settings{Bell: true},
			lines:   []string{"/bell", "/bell off", "/bell", "/bell on"},
			saved:   []shell.Settings{{}, {Bell: true}},
			errOut:  []string{`^/bell is on; /bell on or /bell off changes it\.$`, `^Messages no longer ring the bell\.$`, `^/bell is off;`, `^A message that arrives while you are not typing rings the bell\.$`, `^line \d: unknown friend "zed"`},
			out:     []string{`^Message from bob: hi$`},
		},
		{
			name:   "bad uses",
			lines:  []string{"/time yes", "/bell on off"},
			errOut: []string{`^line 1: usage: /time on, or /time off$`, `^line 2: usage: /bell on, or /bell off$`, `^line \d: unknown friend "zed"`},
			out:    []string{`^Message from bob: hi$`},
		},
		{
			name:    "cannot be kept",
			saveErr: errors.New("read-only file system"),
			lines:   []string{"/time on"},
			saved:   []shell.Settings{{Time: true}},
			errOut:  []string{stamp + `line 1: the setting holds until you quit, but it is not kept: read-only file system$`, stamp + `Every line now starts`, stamp + `line \d: unknown friend "zed"`},
			out:     []string{stamp + `Message from bob: hi$`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var saved []shell.Settings // on Run's goroutine, read after the barrier
			h := startRun(t, runOptions{settings: tc.initial, save: func(s shell.Settings) error {
				saved = append(saved, s)
				return tc.saveErr
			}})
			for _, l := range tc.lines {
				h.typeLine(l)
			}
			h.typeLine("zed/hi")
			// The lines first: Run takes lines and events as they come.
			h.barrier()
			h.net.push(t, network.MessageReceived{From: "bob", Text: "hi"})
			h.barrier()
			if !slices.Equal(saved, tc.saved) {
				t.Errorf("kept %+v, want %+v", saved, tc.saved)
			}
			for _, b := range []struct {
				name string
				buf  *syncBuffer
				want []string
			}{{"Err", h.err, tc.errOut}, {"Out", h.out, tc.out}} {
				got := b.buf.lines()
				ok := len(got) == len(b.want)
				for i := 0; ok && i < len(got); i++ {
					ok = regexp.MustCompile(b.want[i]).MatchString(got[i])
				}
				if !ok {
					t.Errorf("%s holds:\n%s\nwant lines matching:\n%s", b.name, strings.Join(got, "\n"), strings.Join(b.want, "\n"))
				}
			}
		})
	}
}
