package network

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"p2pchat/network/internal/store"
	"p2pchat/network/trust"
	"p2pchat/network/wire"
)

// Mail that friends carry for each other. When a friend cannot be reached
// directly, what waits for them is sealed to their mailbox key (their card
// says which) and handed to every other friend who is online and carries.
// A carrier records its copy before it answers Held, delivers it when it
// has a connection with the recipient, and drops it on the recipient's
// signed Receipt, which it carries back to the sender, or after CarryTTL.
// The recipient takes each message once by (sender, stream, seq), whichever
// way it came, and shows them in the sender's order (inbox.order).
//
// Cards go out on every connection once it is up: our own, and those of
// every other friend we hold.

// Carrying limits and delays.
const (
	// CarryTTL is how long a carrier keeps a copy it could not deliver.
	CarryTTL = 7 * 24 * time.Hour
	// HoldTimeout is how long a carried message that came ahead of an
	// earlier one is held for it before it is shown anyway.
	HoldTimeout = 10 * time.Minute
)

// CarryBudget bounds what one friend may have carried here; past it, new
// copies are refused and the sender tries elsewhere.
type CarryBudget struct {
	Messages int
	Bytes    int64
}

// DefaultCarryBudget is 10,000 messages or 10 MB per sender.
var DefaultCarryBudget = CarryBudget{Messages: 10000, Bytes: 10 << 20}

// mailKey names the message a mail frame is about: its recipient and
// sender, and its place in the sender's stream.
type mailKey struct {
	to, from ID
	stream   wire.StreamID
	seq      uint64
}

func keyOf(f wire.Frame) mailKey {
	switch f := f.(type) {
	case wire.Mail:
		return mailKey{f.To, f.From, f.Stream, f.Seq}
	case wire.Held:
		return mailKey{f.To, f.From, f.Stream, f.Seq}
	case wire.Receipt:
		return mailKey{f.From, f.To, f.Stream, f.Seq}
	}
	return mailKey{}
}

// mailQueue holds the mail frames that wait on one friend's connection
// for the friend's answer: copies handed to them to carry (answered by
// Held), copies carried to them (answered by their Receipt), and receipts
// carried back to them (answered by Held). Each is written once per
// connection, and again on the next until answered.
type mailQueue struct {
	mu    sync.Mutex
	items []*mailItem
}

type mailItem struct {
	key   mailKey
	frame wire.Frame
	on    *conn // the connection it was last written on
}

// add queues f unless a frame about the same message waits already, and
// reports whether it did.
func (q *mailQueue) add(f wire.Frame) bool {
	k := keyOf(f)
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, it := range q.items {
		if it.key == k {
			return false
		}
	}
	q.items = append(q.items, &mailItem{key: k, frame: f})
	return true
}

// answered takes the frame about k off the queue and reports whether one
// waited.
func (q *mailQueue) answered(k mailKey) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, it := range q.items {
		if it.key == k {
			q.items = append(q.items[:i], q.items[i+1:]...)
			return true
		}
	}
	return false
}

// unwritten returns the frames not yet written on c, and counts them as
// written there.
func (q *mailQueue) unwritten(c *conn) []wire.Frame {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []wire.Frame
	for _, it := range q.items {
		if it.on != c {
			it.on = c
			out = append(out, it.frame)
		}
	}
	return out
}

// pending counts the frames not yet written on c.
func (q *mailQueue) pending(c *conn) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := 0
	for _, it := range q.items {
		if it.on != c || c == nil {
			n++
		}
	}
	return n
}

func (q *mailQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.items)
}

// cards holds the friends' cards this instance knows, and its own.
type cards struct {
	mu       sync.Mutex
	own      wire.Card
	byName   map[string]wire.Card
	contacts map[string]trust.Contact
}

// loadCards reads the cards kept in the store.
func (n *Node) loadCards() error {
	n.cards.byName = make(map[string]wire.Card)
	n.cards.contacts = make(map[string]trust.Contact)
	n.cards.own = n.cfg.Identity.Card(n.self.Host != NoHost, time.Now())
	kept, err := n.store.Cards()
	if err != nil {
		return err
	}
	for name, b := range kept {
		f, err := wire.ParseFrame(b)
		card, ok := f.(wire.Card)
		if err != nil || !ok {
			n.log.Warn("a kept card is damaged: dropped", "friend", name, "err", err)
			continue
		}
		contact, cert, err := trust.VerifyCard(card)
		if err != nil || contact.Name != name || n.pins.Check(name, cert) != nil {
			n.log.Warn("a kept card no longer matches its friend: dropped", "friend", name, "err", err)
			continue
		}
		n.cards.byName[name], n.cards.contacts[name] = card, contact
	}
	return nil
}

// contact returns the friend's verified card, if we hold one.
func (n *Node) contact(name string) (trust.Contact, bool) {
	n.cards.mu.Lock()
	defer n.cards.mu.Unlock()
	c, ok := n.cards.contacts[name]
	return c, ok
}

// friendByID returns the friend whose pinned identity, or card, is id.
func (n *Node) friendByID(id ID) (string, bool) {
	for name := range n.outboxes {
		if pinned, src := n.pins.Pinned(name); (src == PinnedByTable || src == PinnedOnFirstUse) && pinned == id {
			return name, true
		}
	}
	return "", false
}

// maxHandedOn bounds the cards of others that go out on one connection,
// so that a table of a thousand friends does not cost a million cards: a
// group of friends has all of theirs handed on; a larger table, those of
// the friends who cannot be reached directly first, then the newest.
const maxHandedOn = 32

// cardFrames returns what goes out on every connection once it is up: our
// card, and the cards we hold of the friends but the one at the other end,
// at most maxHandedOn of them.
func (n *Node) cardFrames(friend string) []wire.Frame {
	n.cards.mu.Lock()
	defer n.cards.mu.Unlock()
	var others []wire.Card
	for name, c := range n.cards.byName {
		if name != friend {
			others = append(others, c)
		}
	}
	slices.SortFunc(others, func(a, b wire.Card) int {
		if a.Reachable != b.Reachable {
			if !a.Reachable {
				return -1
			}
			return 1
		}
		return b.Issued.Compare(a.Issued)
	})
	out := []wire.Frame{n.cards.own}
	for _, c := range others[:min(len(others), maxHandedOn)] {
		out = append(out, c)
	}
	return out
}

// takeCard takes a card that via handed on. A card is kept only if it
// names a friend in the table and matches the ID pinned for that name; a
// card of a friend never met, handed on by another, is pinned on first use,
// and the person is told so.
func (n *Node) takeCard(ctx context.Context, via string, card wire.Card) {
	contact, cert, err := trust.VerifyCard(card)
	if err != nil {
		n.log.Warn("card refused", "via", via, "err", err)
		return
	}
	name := contact.Name
	if _, ok := n.outboxes[name]; !ok {
		return // ourselves, or nobody in our table: not ours to keep
	}
	if _, src := n.pins.Pinned(name); src == NotPinned {
		pinned, err := n.pins.PinFirstUse(name, contact.ID)
		if err != nil {
			n.log.Warn("card refused", "friend", name, "via", via, "err", err)
			return
		}
		if pinned {
			n.log.Warn("identity pinned on first use, from a card", "friend", name, "via", via, "id", contact.ID.String())
			n.emitSoon(IdentityPinned{Name: name, ID: contact.ID, Via: via})
		}
	}
	if err := n.pins.Check(name, cert); err != nil {
		n.log.Warn("card refused: it does not match the pinned identity", "friend", name, "via", via, "err", err)
		return
	}
	n.cards.mu.Lock()
	old, had := n.cards.byName[name]
	fresh := !had || card.Issued.After(old.Issued)
	if fresh {
		n.cards.byName[name], n.cards.contacts[name] = card, contact
	}
	n.cards.mu.Unlock()
	if fresh {
		n.store.PutCard(name, wire.AppendFrame(nil, card))
		n.outboxes[name].wake() // what waits for them may be sealed now
		// A friend who cannot be reached directly needs its card carried
		// most: hand it on to the friends we are connected with now. The
		// others get any card on their next connection.
		for other := range n.outboxes {
			if contact.Reachable {
				break
			}
			if other != name && other != via {
				if c := n.carrierConn(other); c != nil {
					c.owe(card)
				}
			}
		}
	}
}

// sendersCards returns the cards of the senders of the mail in frames,
// ours included: they go first, in the same write, so that a carrier can
// hand ours on with the copy, and the recipient check the letters,
// whatever cards each had. (The cards sent when the connection came up go
// by another writer, and may come after.)
func (n *Node) sendersCards(frames []wire.Frame) []wire.Frame {
	var out []wire.Frame
	seen := make(map[string]bool)
	n.cards.mu.Lock()
	defer n.cards.mu.Unlock()
	for _, f := range frames {
		m, ok := f.(wire.Mail)
		if !ok {
			continue
		}
		if ID(m.From) == n.cfg.Identity.ID {
			if !seen[""] {
				seen[""] = true
				out = append(out, n.cards.own)
			}
			continue
		}
		name, ok := n.friendByID(m.From)
		if !ok || seen[name] {
			continue
		}
		seen[name] = true
		if c, ok := n.cards.byName[name]; ok {
			out = append(out, c)
		}
	}
	return out
}

// connUp is called once a connection with friend is up, at either end:
// cards go out on it, and the friend may carry what waits for others.
func (n *Node) connUp(c *conn) {
	c.owe(n.cardFrames(c.friend)...)
	n.probe(c)
	if n.cfg.NoCarry {
		return
	}
	for name, o := range n.outboxes {
		if name != c.friend {
			// What waits for others goes to this friend again, all of it:
			// a copy it lost (killed before it recorded it, say) is not
			// lost for good; one it holds it recognises.
			o.rehand(c.friend)
			o.wake() // an outbox that cannot reach its friend hands off now
		}
	}
}

// rehand forgets which messages were handed to carrier, so that they are
// handed to it again.
func (o *outbox) rehand(carrier string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range o.queue {
		delete(o.queue[i].handed, carrier)
	}
}

// carrierConn returns an open connection with friend, either way, or nil.
func (n *Node) carrierConn(friend string) *conn {
	if c := n.inboundConn(friend); c != nil {
		return c
	}
	return n.outboxes[friend].live.Load()
}

// takeMail takes a sealed copy that came on c: for us, it is opened and
// received as a message; for another friend, it is carried. It returns an
// error only when nothing more is to be taken from c.
func (n *Node) takeMail(ctx context.Context, c *conn, m wire.Mail) error {
	if ID(m.To) == n.cfg.Identity.ID {
		return n.receiveMail(ctx, c, m)
	}
	held := wire.Held{To: m.To, From: m.From, Stream: m.Stream, Seq: m.Seq, Full: true}
	recipient, ok := n.friendByID(m.To)
	switch {
	case n.cfg.NoCarry:
	case ID(m.From) != c.id:
		// Only the sender hands on its own mail: a copy of someone
		// else's would spend their budget.
		return fmt.Errorf("%w: mail from %s handed on by %s", wire.ErrBadFrame, ID(m.From), c.friend)
	case !ok || recipient == c.friend:
		n.log.Info("mail for nobody we carry for: refused", "from", c.friend, "to", ID(m.To).String())
	default:
		p := n.store.AddCarried(store.Carried{
			Sender: c.friend, Recipient: recipient, Stream: m.Stream, Seq: m.Seq,
			Expires: time.Now().Add(n.cfg.CarryTTL), Mail: wire.AppendFrame(nil, m),
		}, store.Budget{Messages: n.cfg.CarryBudget.Messages, Bytes: n.cfg.CarryBudget.Bytes})
		forward := func() {
			if n.outboxes[recipient].mail.add(m) {
				n.outboxes[recipient].wake()
			}
		}
		select {
		case <-p.Done(): // refused at once (over the budget), or recorded already
		default:
			// On its way to the recipient while the store records it, as
			// a message goes on the wire; held is answered once recorded.
			forward()
		}
		switch err := p.Wait(); {
		case errors.Is(err, store.ErrBudget):
			n.log.Warn("mail refused: over the budget for its sender", "from", c.friend, "to", recipient, "err", err)
		case err != nil:
			return err // not answered: the sender tries again, or elsewhere
		default:
			forward() // if the store was quicker than the select
			held.Full = false
		}
	}
	c.owe(held)
	return nil
}

// receiveMail opens a sealed copy for us and receives the message in it:
// recorded, shown in its sender's order, and answered with our signed
// receipt. A copy that does not open or verify is refused once, loudly.
func (n *Node) receiveMail(ctx context.Context, c *conn, m wire.Mail) error {
	sender, ok := n.friendByID(m.From)
	if !ok {
		n.log.Warn("mail from nobody in the table: ignored", "via", c.friend, "from", ID(m.From).String())
		return nil
	}
	from, ok := n.contact(sender)
	if !ok {
		// Without their card we cannot check the signature; the carrier
		// keeps the copy and brings it again.
		n.log.Warn("mail from a friend whose card we lack: left with the carrier", "friend", sender, "via", c.friend)
		return nil
	}
	l, err := n.cfg.Identity.Open(m, from)
	if err != nil {
		n.log.Warn("mail refused", "friend", sender, "via", c.friend, "err", err)
		n.emit(ctx, MailRefused{From: sender, Via: c.friend, Err: err})
		return nil
	}
	via := c.friend
	if via == sender {
		via = ""
	}
	msg := wire.Message{Stream: l.Stream, Seq: l.Seq, Low: l.Low, Sent: l.Sent, Group: l.Group, Text: l.Text}
	receipt := n.cfg.Identity.Receipt(ID(m.From), m.Stream, m.Seq)
	return n.inboxes[sender].receiveCarried(ctx, c.ending, msg, via, func() { c.owe(receipt) })
}

// takeHeld takes a Held that came on c: a carrier answering a copy we
// handed it, or a sender taking a receipt we carried back to it.
func (n *Node) takeHeld(ctx context.Context, c *conn, h wire.Held) {
	k := keyOf(h)
	if !n.outboxes[c.friend].mail.answered(k) {
		return
	}
	if ID(h.From) == n.cfg.Identity.ID {
		if recipient, ok := n.friendByID(h.To); ok {
			n.outboxes[recipient].carried(ctx, h.Stream, h.Seq, c.friend, h.Full)
		}
		return
	}
	if sender, ok := n.friendByID(h.From); ok && sender == c.friend {
		if recipient, ok := n.friendByID(h.To); ok {
			n.store.DropReceipt(sender, recipient, h.Stream, h.Seq)
		}
	}
}

// takeReceipt takes a recipient's signed receipt that came on c: for a
// message of ours, it is delivered; for a copy we carry, the copy is
// dropped and the receipt carried back to its sender.
func (n *Node) takeReceipt(ctx context.Context, c *conn, r wire.Receipt) {
	recipient, ok := n.friendByID(r.From)
	if !ok {
		return
	}
	by, ok := n.contact(recipient)
	if !ok {
		return
	}
	if err := trust.VerifyReceipt(r, by); err != nil {
		n.log.Warn("receipt refused", "from", recipient, "via", c.friend, "err", err)
		return
	}
	if ID(r.To) == n.cfg.Identity.ID {
		via := c.friend
		if via == recipient {
			via = ""
		}
		n.outboxes[recipient].receipted(r.Stream, r.Seq, via)
		c.owe(wire.Held{To: r.From, From: r.To, Stream: r.Stream, Seq: r.Seq})
		return
	}
	sender, ok := n.friendByID(r.To)
	if !ok {
		return
	}
	k := keyOf(r)
	n.outboxes[recipient].mail.answered(k)
	n.store.DropCarried(sender, recipient, r.Stream, r.Seq)
	n.store.AddReceipt(store.Receipt{Sender: sender, Recipient: recipient, Stream: r.Stream, Seq: r.Seq, Receipt: wire.AppendFrame(nil, r)}, time.Now().Add(n.cfg.CarryTTL))
	if n.outboxes[sender].mail.add(r) {
		n.outboxes[sender].wake()
	}
}

// loadCarried puts what the store carries, copies and receipts, in the
// queues of the friends they go to.
func (n *Node) loadCarried() error {
	n.store.Expire(time.Now())
	for name, o := range n.outboxes {
		copies, err := n.store.CarriedFor(name, time.Now())
		if err != nil {
			return err
		}
		for _, cp := range copies {
			if f, err := wire.ParseFrame(cp.Mail); err == nil {
				o.mail.add(f)
			}
		}
		receipts, err := n.store.ReceiptsFor(name)
		if err != nil {
			return err
		}
		for _, r := range receipts {
			if f, err := wire.ParseFrame(r.Receipt); err == nil {
				o.mail.add(f)
			}
		}
		if o.mail.len() > 0 {
			o.wake()
		}
	}
	return nil
}

// handOff hands sealed copies of what waits for o's friend, who cannot be
// reached, to every other friend with an open connection, each copy once.
func (n *Node) handOff(ctx context.Context, o *outbox) {
	var carriers []string
	for name := range n.outboxes {
		if name != o.friend.Name && n.carrierConn(name) != nil {
			carriers = append(carriers, name)
		}
	}
	if len(carriers) == 0 {
		return
	}
	to, ok := n.contact(o.friend.Name)
	if !ok {
		// Said only when a friend could carry: then it is news.
		o.cannotCarry(ctx, errors.New("no card of theirs yet to seal to: it comes with the first connection, direct or through a friend"))
		return
	}
	for _, m := range o.toHandOff(carriers) {
		l := wire.Letter{From: n.cfg.Identity.ID, To: to.ID, Stream: m.stream, Seq: m.seq, Low: m.low, Sent: m.created, Group: m.group, Text: m.text}
		sealed, err := n.cfg.Identity.Seal(to, l)
		if err != nil {
			n.log.Error("cannot seal", "friend", o.friend.Name, "err", err)
			return
		}
		mail := wire.Mail{To: to.ID, From: n.cfg.Identity.ID, Stream: m.stream, Seq: m.seq, Expires: time.Now().Add(n.cfg.CarryTTL), Sealed: sealed}
		for _, name := range m.carriers {
			if n.outboxes[name].mail.add(mail) {
				n.outboxes[name].wake()
			}
		}
	}
}

// handOffItem is a message to seal and hand to carriers.
type handOffItem struct {
	stream   wire.StreamID
	seq, low uint64
	created  time.Time
	group    string
	text     string
	carriers []string // the carriers that do not hold it yet
}

// toHandOff returns the messages waiting that some of carriers do not
// hold yet, and counts them as handed to those. As on a connection, a
// message goes out while the store records it: one the store then fails
// to record is reported failed, as one the carriers may have.
func (o *outbox) toHandOff(carriers []string) []handOffItem {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []handOffItem
	for i := range o.queue {
		m := &o.queue[i]
		var news []string
		for _, c := range carriers {
			if !m.handed[c] && !m.refused[c] {
				news = append(news, c)
			}
		}
		if len(news) == 0 {
			continue
		}
		if m.handed == nil {
			m.handed = make(map[string]bool)
		}
		for _, c := range news {
			m.handed[c] = true
		}
		out = append(out, handOffItem{stream: m.stream, seq: m.seq, low: o.low[m.stream], created: m.created, group: m.group, text: m.text, carriers: news})
	}
	return out
}

// waits reports whether message (stream, seq) waits for the friend, and
// who carries it.
func (o *outbox) waits(stream wire.StreamID, seq uint64) (bool, []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, m := range o.queue {
		if m.stream == stream && m.seq == seq {
			return true, slices.Clone(m.carriedBy)
		}
	}
	return false, nil
}

// carried takes a carrier's answer for a copy of message (stream, seq).
func (o *outbox) carried(ctx context.Context, stream wire.StreamID, seq uint64, via string, full bool) {
	o.mu.Lock()
	var m *outgoing
	for i := range o.queue {
		if o.queue[i].stream == stream && o.queue[i].seq == seq {
			m = &o.queue[i]
		}
	}
	if m == nil {
		o.mu.Unlock()
		return
	}
	if full {
		if m.refused == nil {
			m.refused = make(map[string]bool)
		}
		m.refused[via] = true
		delete(m.handed, via)
		o.mu.Unlock()
		o.log.Info("carrier refused a copy: over its budget", "via", via, "seq", seq)
		return
	}
	m.carriedBy = append(m.carriedBy, via)
	ev := MessageCarried{To: o.friend.Name, Seq: seq, Text: m.text, Via: via}
	o.mu.Unlock()
	o.emit(ctx, ev)
}

// receipted takes the friend's signed receipt for message (stream, seq);
// run delivers it.
func (o *outbox) receipted(stream wire.StreamID, seq uint64, via string) {
	o.mu.Lock()
	o.receipts = append(o.receipts, receiptNote{stream, seq, via})
	o.mu.Unlock()
	o.wake()
}

type receiptNote struct {
	stream wire.StreamID
	seq    uint64
	via    string
}

// takeReceipts delivers the messages the friend's receipts name: on run's
// goroutine, as acks are.
func (o *outbox) takeReceipts(ctx context.Context) {
	o.mu.Lock()
	notes := o.receipts
	o.receipts = nil
	var delivered []MessageDelivered
	for _, r := range notes {
		for i := range o.queue {
			m := &o.queue[i]
			if m.stream != r.stream || m.seq != r.seq {
				continue
			}
			if i < o.sent {
				// Written on the connection too: its ack takes it off.
				m.via = r.via
				break
			}
			delivered = append(delivered, MessageDelivered{To: o.friend.Name, Seq: m.seq, Text: m.text, Sent: m.created, WasQueued: m.reported, Via: r.via})
			o.queue = append(o.queue[:i], o.queue[i+1:]...)
			break
		}
	}
	o.mu.Unlock()
	for _, ev := range delivered {
		o.emit(ctx, ev)
	}
}

// cannotCarry tells the person, once until it changes, why what waits for
// the friend stays queued for the direct path.
func (o *outbox) cannotCarry(ctx context.Context, err error) {
	if o.noCarry != nil && o.noCarry.Error() == err.Error() {
		return
	}
	o.noCarry = err
	o.emit(ctx, CannotCarry{To: o.friend.Name, Err: err})
}

// NoHost is the host of a table row for a friend who has no address to
// dial (behind a NAT): "-". Such a friend is reached through the
// connections it opens, or through friends who carry.
const NoHost = "-"
