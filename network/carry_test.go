package network

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"p2pchat/network/trust"
	"p2pchat/network/wire"
)

// carryWorld is alice, bob and carol where alice and carol cannot reach
// each other (each has the other as "-", as friends behind two NATs do),
// and both reach bob. Each table is that instance's own view.
type carryWorld struct {
	tables map[string]*Table
	ids    map[string]*Identity
	dirs   map[string]string // store directories, kept across restarts
}

func newCarryWorld(t *testing.T) *carryWorld {
	t.Helper()
	base := testTable(t, "alice", "bob", "carol")
	w := &carryWorld{tables: map[string]*Table{}, ids: map[string]*Identity{}, dirs: map[string]string{}}
	for _, self := range []string{"alice", "bob", "carol"} {
		rows := base.Friends()
		for i := range rows {
			if (self == "alice" && rows[i].Name == "carol") || (self == "carol" && rows[i].Name == "alice") {
				rows[i].Host = NoHost
			}
		}
		tab, err := NewTable(rows)
		if err != nil {
			t.Fatal(err)
		}
		w.tables[self] = tab
		w.ids[self] = newIdentity(t, self)
		w.dirs[self] = t.TempDir()
	}
	return w
}

func (w *carryWorld) start(t *testing.T, name string, tweak ...func(*Config)) *Node {
	t.Helper()
	db, err := OpenStore(w.dirs[name])
	if err != nil {
		t.Fatal(err)
	}
	tweak = append([]func(*Config){withIdentity(w.ids[name]), func(c *Config) { c.Store = db }}, tweak...)
	n := startNode(t, w.tables[name], name, tweak...)
	t.Cleanup(func() { db.Close() }) // after the node's own cleanup
	return n
}

// stop closes n and its store, for a restart.
func (w *carryWorld) stop(n *Node) {
	n.Close()
	n.cfg.Store.Close()
}

// TestMailIsCarriedToAFriendWhoCannotBeReached: alice and carol cannot
// reach each other; bob carries. Carol gets alice's message once, through
// bob, alice hears it was delivered, and bob keeps nothing of it: not the
// copy, and never the text.
func TestMailIsCarriedToAFriendWhoCannotBeReached(t *testing.T) {
	checkNoLeaks(t)
	w := newCarryWorld(t)
	bob := w.start(t, "bob")
	carol := w.start(t, "carol")
	alice := w.start(t, "alice")

	// Both meet bob, who hands on their cards.
	seq := send(t, carol, "bob", "hi bob, from carol")
	waitFor(t, carol, func(e MessageDelivered) bool { return e.Seq == seq })
	seq = send(t, alice, "bob", "hi bob, from alice")
	var pinned IdentityPinned
	waitAll(t, alice,
		func(e Event) bool { d, ok := e.(MessageDelivered); return ok && d.Seq == seq },
		func(e Event) bool {
			p, ok := e.(IdentityPinned)
			if ok && p.Name == "carol" {
				pinned = p
			}
			return ok && p.Name == "carol"
		})
	if pinned.Via != "bob" || pinned.ID != w.ids["carol"].ID {
		t.Errorf("alice pinned %+v, want carol's identity through bob", pinned)
	}

	const secret = "the key is under the blue pot"
	seq = send(t, alice, "carol", secret)
	carried := waitFor(t, alice, func(e MessageCarried) bool { return e.Seq == seq })
	if carried.Via != "bob" || carried.To != "carol" {
		t.Errorf("carried %+v, want to carol via bob", carried)
	}
	got := waitFor(t, carol, func(e MessageReceived) bool { return e.From == "alice" })
	if got.Text != secret || got.Via != "bob" || got.Seq != seq {
		t.Errorf("carol got %+v, want alice's message %d through bob", got, seq)
	}
	delivered := waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == seq && e.To == "carol" })
	if delivered.Via != "bob" {
		t.Errorf("delivered %+v, want via bob", delivered)
	}
	waitCondition(t, "bob to drop his copy", func() bool { return statusOf(t, bob, "carol").Carrying == 0 })
	if st := statusOf(t, alice, "carol"); st.Pending != 0 {
		t.Errorf("alice still has %d waiting for carol", st.Pending)
	}
	bob.Close()
	assertNoText(t, w.dirs["bob"], secret)
}

// TestCarriedAfterTheSenderLeft: alice hands her message to bob and
// quits; carol starts afterwards and gets it from bob.
func TestCarriedAfterTheSenderLeft(t *testing.T) {
	checkNoLeaks(t)
	w := newCarryWorld(t)
	bob := w.start(t, "bob")
	carol := w.start(t, "carol")
	seq := send(t, carol, "bob", "card exchange")
	waitFor(t, carol, func(e MessageDelivered) bool { return e.Seq == seq })
	w.stop(carol)

	alice := w.start(t, "alice")
	seq = send(t, alice, "bob", "card exchange")
	waitAll(t, alice,
		func(e Event) bool { d, ok := e.(MessageDelivered); return ok && d.Seq == seq },
		func(e Event) bool { p, ok := e.(IdentityPinned); return ok && p.Name == "carol" })
	seq = send(t, alice, "carol", "for later")
	waitFor(t, alice, func(e MessageCarried) bool { return e.Seq == seq && e.Via == "bob" })
	h, err := alice.History("carol", 1)
	if err != nil || len(h) != 1 || h[0].Delivered || !slices.Equal(h[0].CarriedBy, []string{"bob"}) {
		t.Errorf("alice's history with carol: %+v, %v; want the message waiting, carried by bob", h, err)
	}
	w.stop(alice)
	if st := statusOf(t, bob, "carol"); st.Carrying != 1 {
		t.Errorf("bob carries %d for carol, want 1", st.Carrying)
	}

	carol = w.start(t, "carol")
	send(t, carol, "bob", "back") // carol reaches bob, who delivers
	got := waitFor(t, carol, func(e MessageReceived) bool { return e.From == "alice" })
	if got.Text != "for later" || got.Via != "bob" {
		t.Errorf("carol got %+v", got)
	}
	waitCondition(t, "bob to drop his copy", func() bool { return statusOf(t, bob, "carol").Carrying == 0 })
}

// TestAlteredMailIsRefused: a carrier that alters a sealed copy, or
// forges one, gets nothing shown: one MailRefused, no message, no receipt.
func TestAlteredMailIsRefused(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob", "carol")
	aliceID, bobID := newIdentity(t, "alice"), newIdentity(t, "bob")
	carol := startNode(t, tab, "carol")
	carolContact, _, err := trust.VerifyCard(carol.cfg.Identity.Card(true, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	l := wire.Letter{From: aliceID.ID, To: carol.ID(), Stream: testStream, Seq: 1, Sent: time.Now(), Text: "genuine"}
	sealed, err := aliceID.Seal(carolContact, l)
	if err != nil {
		t.Fatal(err)
	}
	altered := bytes.Clone(sealed)
	altered[len(altered)-20] ^= 1
	mail := func(s []byte) wire.Mail {
		return wire.Mail{To: carol.ID(), From: aliceID.ID, Stream: testStream, Seq: 1, Expires: time.Now().Add(time.Hour), Sealed: s}
	}
	// Carol has met alice (pinned) and holds her card, as from bob.
	if _, err := carol.pins.PinFirstUse("alice", aliceID.ID); err != nil {
		t.Fatal(err)
	}
	c := tlsClient(t, carol, bobID)
	c.Write(frames(wire.Hello{Version: wire.Version, Name: "bob"}, aliceID.Card(false, time.Now()), mail(altered)))
	refused := waitFor[MailRefused](t, carol, nil)
	if refused.From != "alice" || refused.Via != "bob" || !errors.Is(refused.Err, trust.ErrBadMail) {
		t.Errorf("refused %+v, want alice's mail via bob, ErrBadMail", refused)
	}
	// The genuine copy still gets in.
	c.Write(frames(mail(sealed)))
	got := waitFor[MessageReceived](t, carol, nil)
	if got.Text != "genuine" || got.Via != "bob" {
		t.Errorf("carol got %+v", got)
	}
}

// TestCarriedMailIsShownInTheSendersOrder: a carried message that comes
// ahead of an earlier one waits for it; after HoldTimeout it is shown
// anyway, and the earlier one, when it comes, is marked late.
func TestCarriedMailIsShownInTheSendersOrder(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob", "carol")
	aliceID, bobID := newIdentity(t, "alice"), newIdentity(t, "bob")
	const hold = 300 * time.Millisecond
	carol := startNode(t, tab, "carol", func(c *Config) { c.HoldTimeout = hold })
	if _, err := carol.pins.PinFirstUse("alice", aliceID.ID); err != nil {
		t.Fatal(err)
	}
	to, _, _ := trust.VerifyCard(carol.cfg.Identity.Card(true, time.Now()))
	letter := func(seq uint64, text string) wire.Mail {
		t.Helper()
		l := wire.Letter{From: aliceID.ID, To: carol.ID(), Stream: testStream, Seq: seq, Sent: time.Now(), Text: text}
		sealed, err := aliceID.Seal(to, l)
		if err != nil {
			t.Fatal(err)
		}
		return wire.Mail{To: carol.ID(), From: aliceID.ID, Stream: testStream, Seq: seq, Expires: time.Now().Add(time.Hour), Sealed: sealed}
	}
	c := tlsClient(t, carol, bobID)
	if _, err := c.Write(frames(wire.Hello{Version: wire.Version, Name: "bob"}, aliceID.Card(false, time.Now()), letter(2, "two"), letter(1, "one"))); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"one", "two"} {
		if got := waitFor[MessageReceived](t, carol, nil); got.Text != want || got.Late || got.AheadOfGap {
			t.Errorf("got %+v, want %q in order, neither late nor ahead", got, want)
		}
	}

	c.Write(frames(letter(5, "five")))
	got := waitFor[MessageReceived](t, carol, nil)
	if got.Text != "five" || !got.AheadOfGap {
		t.Errorf("after the hold, got %+v, want five shown ahead of the gap", got)
	}
	c.Write(frames(letter(3, "three")))
	if got := waitFor[MessageReceived](t, carol, nil); got.Text != "three" || !got.Late {
		t.Errorf("got %+v, want three, late", got)
	}
}

// waitAll reads n's events until each of preds has matched one, in any
// order.
func waitAll(t *testing.T, n *Node, preds ...func(Event) bool) {
	t.Helper()
	left := slices.Clone(preds)
	timeout := time.After(waitTimeout)
	for len(left) > 0 {
		select {
		case ev := <-n.Events():
			if m, ok := ev.(MessageReceived); ok {
				n.MarkShown(m)
			}
			for i, p := range left {
				if p(ev) {
					left = slices.Delete(left, i, i+1)
					break
				}
			}
		case <-timeout:
			t.Fatalf("%s: %d events not seen within %v", n.Name(), len(left), waitTimeout)
		}
	}
}

// waitCondition waits for ok, polling, up to waitTimeout.
func waitCondition(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assertNoText fails if any file under dir holds text.
func assertNoText(t *testing.T, dir, text string) {
	t.Helper()
	filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, []byte(text)) {
			t.Errorf("%s holds the text of a carried message", path)
		}
		return nil
	})
}
