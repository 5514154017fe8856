package network

import (
	"time"
)

// Event is something that happened on the network, for the shell to show.
// It is one of MessageReceived, MessageDelivered, MessageQueued,
// MessageFailed, ConnUp, ConnDown, ConnRefused, IdentityPinned,
// StoreFailed and StoreRecovered.
type Event interface{ event() }

// MessageReceived: a friend sent us a message.
type MessageReceived struct {
	From string
	Seq  uint64    // the sender's sequence number, in its stream
	Sent time.Time // the sender's clock
	Text string    // as received: may hold any characters, control characters included
	row  int64     // its row in the store, for MarkShown
}

// MessageDelivered: the friend acknowledged a message we sent.
type MessageDelivered struct {
	To        string
	Seq       uint64
	Text      string
	Sent      time.Time // when the person sent it
	WasQueued bool      // a MessageQueued was reported for it
}

// MessageQueued: a message waits because the friend cannot be reached now;
// it goes out as soon as they can. Waiting counts the messages waiting for
// that friend, this one included; Err says why the friend is unreachable.
type MessageQueued struct {
	To      string
	Seq     uint64
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

func (MessageReceived) event()  {}
func (MessageDelivered) event() {}
func (MessageFailed) event()    {}
func (MessageQueued) event()    {}
func (ConnUp) event()           {}
func (ConnDown) event()         {}
func (ConnRefused) event()      {}
func (IdentityPinned) event()   {}
func (StoreFailed) event()      {}
func (StoreRecovered) event()   {}
