package network

import (
	"time"
)

// Event is something that happened on the network, for the shell to show.
// It is one of MessageReceived, MessageDelivered, MessageQueued,
// MessageFailed, GroupReport, MessageRefused, MessageCarried, CannotCarry,
// MailRefused, ConnUp, ConnDown, ConnRefused, IdentityPinned,
// ReceivingPaused, StoreFailed and StoreRecovered.
type Event interface{ event() }

// MessageReceived: a friend sent us a message.
type MessageReceived struct {
	From  string
	Seq   uint64    // the sender's sequence number, in its stream
	Sent  time.Time // the sender's clock
	Group string    // the group it was written to, without '@' (AllGroup for @all); "" for us alone
	Text  string    // as received: may hold any characters, control characters included
	// Via names the friend who carried it, sealed; "" when it came
	// directly.
	Via string
	// Late: later messages of its sender were shown before it came.
	// AheadOfGap: it is shown although an earlier message of its sender
	// has not come yet (it waited HoldTimeout for it).
	Late, AheadOfGap bool
	row              int64 // its row in the store, for MarkShown
	// replayed: received in an earlier run, handed on again (not heard now)
	replayed bool
}

// MessageDelivered: the friend acknowledged a message we sent. For a copy
// of a group message (Group set), it comes only for a copy that was not
// delivered when its GroupReport went out, or that waited from an earlier
// run.
type MessageDelivered struct {
	To        string
	Seq       uint64
	Group     string // the group the message was written to, if any
	Text      string
	Sent      time.Time // when the person sent it
	WasQueued bool      // a MessageQueued or GroupReport said it waits
	Via       string    // the friend who carried it, "" when it went directly
}

// GroupReport: every copy of a message we wrote to a group is delivered,
// queued because its member cannot be reached now, or failed because the
// store could not record it. Each member is in one of the three lists, in
// the group's order; Why says, for the queued and failed ones, why. A queued
// copy is reported by a MessageDelivered when it arrives.
type GroupReport struct {
	Group                     string // without '@'
	Text                      string
	Sent                      time.Time
	Delivered, Queued, Failed []string
	Why                       map[string]error
}

// MessageRefused: a friend sent a message tagged with a group that is not
// in our table, or that the friend is not in. It was acknowledged and not
// shown (see inbox.receive); it is reported once per friend and group.
type MessageRefused struct {
	From  string
	Group string // as the friend sent it: a valid name, though perhaps no group's
	Err   error
}

// MessageCarried: a friend holds a sealed copy of a message for its
// recipient, who could not be reached, and carries it to them. The
// recipient's receipt makes it MessageDelivered.
type MessageCarried struct {
	To   string
	Seq  uint64
	Text string
	Via  string
}

// CannotCarry: messages to a friend who cannot be reached stay queued for
// the direct path, and no friend carries them; Err says why (no card of
// theirs to seal to yet, say). Reported once per friend until it changes.
type CannotCarry struct {
	To  string
	Err error
}

// MailRefused: a sealed copy carried by Via does not open or verify: it
// was altered, or forged. Nothing of it is shown. Reported once per copy.
type MailRefused struct {
	From string // the sender it claims
	Via  string
	Err  error
}

// MessageQueued: a message waits because the friend cannot be reached now;
// it goes out as soon as they can. Waiting counts the messages waiting for
// that friend, this one included; Err says why the friend is unreachable.
type MessageQueued struct {
	To      string
	Seq     uint64
	Group   string // the group a copy from an earlier run was written to, if any
	Text    string
	Waiting int
	Err     error
}

// MessageFailed: the store could not record a message, so it is not kept
// and will not be sent again. Written says it had already gone out on a
// connection (it goes out while it is being recorded), so the friend may
// have it; while the store keeps failing, nothing goes out before it is
// recorded.
type MessageFailed struct {
	To      string
	Seq     uint64
	Group   string // the group of a copy whose GroupReport is out, if any
	Text    string
	Err     error
	Written bool
}

// StoreFailed: the store could not record messages received; they are not
// acknowledged, so their senders keep them and send them again. It is
// reported once, until StoreRecovered.
type StoreFailed struct {
	Err error
}

// StoreRecovered: the store records again after a StoreFailed.
type StoreRecovered struct{}

// ConnUp: a connection with a friend is established. Outbound connections
// are the ones we dialled to send, up once TLS checked the friend (their
// welcome, and a first-use pin, come with the first acknowledgement);
// inbound ones were dialled by the friend, up once their hello passed.
type ConnUp struct {
	Friend     string
	Addr       string
	Inbound    bool
	ID         ID     // the friend's identity, checked
	TLSVersion uint16 // tls.VersionTLS13
}

// IdentityPinned: a friend with no pinned identity was seen for the first
// time, and the identity it presented is now pinned to its name.
type IdentityPinned struct {
	Name string
	Addr string
	ID   ID
	Via  string // the friend who handed on its card; "" when met directly
}

// ConnDown: a connection with a friend closed; Err says why (ErrIdle for an
// idle close).
type ConnDown struct {
	Friend  string
	Addr    string
	Inbound bool
	Err     error
}

// ConnRefused: an inbound connection was closed before it was accepted as a
// friend's, or a friend's connection broke the protocol. Name is the name it
// claimed, if it got that far; it comes from a stranger and may be anything.
type ConnRefused struct {
	Addr string
	Name string
	Err  error
	// Dropped counts the refusals before this one that were not reported:
	// the shell was not keeping up.
	Dropped int
}

// ReceivingPaused: a friend sent more than Limit bytes of text within
// Window, so nothing more is read from them until Until, when the window
// has room again; they keep what they send meanwhile, unacknowledged. It
// is reported once per pause.
type ReceivingPaused struct {
	From   string
	Limit  int64
	Window time.Duration
	Until  time.Time
}

func (MessageReceived) event()  {}
func (ReceivingPaused) event()  {}
func (MessageDelivered) event() {}
func (MessageFailed) event()    {}
func (MessageQueued) event()    {}
func (GroupReport) event()      {}
func (MessageRefused) event()   {}
func (ConnUp) event()           {}
func (ConnDown) event()         {}
func (ConnRefused) event()      {}
func (IdentityPinned) event()   {}
func (StoreFailed) event()      {}
func (StoreRecovered) event()   {}
func (MessageCarried) event()   {}
func (CannotCarry) event()      {}
func (MailRefused) event()      {}
