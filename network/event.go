package network

import (
	"errors"
	"fmt"
	"time"
)

// Event is something that happened on the network, for the shell to show.
// It is one of MessageReceived, MessageDelivered, MessageQueued,
// MessageFailed, PeerUp, PeerDown, ConnRefused and IdentityPinned.
type Event interface{ event() }

// MessageReceived: a friend sent us a message.
type MessageReceived struct {
	From string
	ID   uint64
	Sent time.Time // the sender's clock
	Text string    // as received: may hold any bytes, control characters included
}

// MessageDelivered: the friend acknowledged a message we sent.
type MessageDelivered struct {
	To        string
	ID        uint64
	Text      string
	Sent      time.Time // when the person sent it
	WasQueued bool      // a MessageQueued was reported for it
}

// MessageQueued: a message waits because the friend cannot be reached now;
// it goes out as soon as they can. Waiting counts the messages waiting for
// that friend, this one included; Err says why the friend is unreachable.
type MessageQueued struct {
	To      string
	ID      uint64
	Text    string
	Waiting int
	Err     error
}

// MessageFailed: a message could not be recorded, so it was not sent.
type MessageFailed struct {
	To   string
	ID   uint64
	Text string
	Err  error
}

// PeerUp: a connection with a friend is established. Outbound connections
// are the ones we dialled to send; inbound ones were dialled by the friend.
type PeerUp struct {
	Name       string
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

// PeerDown: a connection with a friend closed; Err says why (ErrIdle for an
// idle close, nil when it ended cleanly).
type PeerDown struct {
	Name    string
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
}

func (MessageReceived) event()  {}
func (MessageDelivered) event() {}
func (MessageFailed) event()    {}
func (MessageQueued) event()    {}
func (PeerUp) event()           {}
func (PeerDown) event()         {}
func (ConnRefused) event()      {}
func (IdentityPinned) event()   {}

// Errors carried by events and returned by Send.
var (
	// ErrIdle is the reason of a connection closed for want of activity.
	ErrIdle = errors.New("idle")
	// ErrUnknownFriend means a name is not in the table.
	ErrUnknownFriend = errors.New("unknown friend")
	// ErrSelf means a message was addressed to this instance itself.
	ErrSelf = errors.New("you cannot send a message to yourself")
	// ErrNoAck means a friend did not acknowledge a message in time and the
	// connection was given up as dead (the message is sent again).
	ErrNoAck = errors.New("no acknowledgement")
)

// ReachError is the reason a message could not be handed to a friend.
type ReachError struct {
	Name string
	Addr string
	Err  error
}

func (e *ReachError) Error() string {
	return fmt.Sprintf("cannot reach %s at %s: %s", e.Name, e.Addr, reason(e.Err))
}

func (e *ReachError) Unwrap() error { return e.Err }
