package network

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"p2pchat/network/wire"
	"strings"
)

// certRejected reports whether err is the other side's TLS alert refusing
// our certificate.
func certRejected(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error" && strings.Contains(oe.Err.Error(), "bad certificate")
}

// reason turns a network error into the short phrase a person needs:
// "connection refused" rather than "dial tcp 127.0.0.1:50001: connect:
// connection refused".
func reason(err error) string {
	var ne net.Error
	var se *os.SyscallError
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return "no error"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed by the other side"
	case errors.As(err, &dnsErr):
		return "cannot resolve " + dnsErr.Name + ": " + dnsErr.Err
	case errors.As(err, &se):
		return se.Err.Error()
	case errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.Is(err, net.ErrClosed):
		return "connection closed"
	}
	var rhe tls.RecordHeaderError
	if errors.As(err, &rhe) {
		return "it does not speak TLS (plaintext, or another protocol)"
	}
	var oe *net.OpError
	if certRejected(err) {
		return "it refused our certificate: we are not in its table, or it has another identity pinned for us"
	}
	if errors.As(err, &oe) && oe.Op == "remote error" {
		return "the other side gave up: " + oe.Err.Error()
	}
	if errors.As(err, &oe) && oe.Err != nil {
		return strings.TrimPrefix(oe.Err.Error(), "connect: ")
	}
	return err.Error()
}

// The rules of names and messages, from package wire, for callers that
// check input before they send it.
const MaxMessageRunes = wire.MaxMessageRunes

var (
	// ErrEmptyMessage means a message has no text.
	ErrEmptyMessage = wire.ErrEmptyMessage
	// ErrMessageTooLong means a message is over MaxMessageRunes characters.
	ErrMessageTooLong = wire.ErrMessageTooLong
)

// CheckText reports whether text may be sent as a message: not empty, valid
// UTF-8, at most MaxMessageRunes characters. Send checks it too.
func CheckText(text string) error { return wire.CheckText(text) }

// CheckName reports whether name may be a friend's name.
func CheckName(name string) error { return wire.CheckName(name) }

// Errors carried by events and returned by Send.
var (
	// ErrIdle is the reason of a connection closed for want of activity.
	ErrIdle = errors.New("idle")
	// ErrNoAddress means a friend's row has no address ("-"): they are
	// reached through the connections they open, or through friends.
	ErrNoAddress = errors.New("no address to dial: reached through the connections it opens, or through friends")
	// ErrUnknownFriend means a name is not in the table.
	ErrUnknownFriend = errors.New("unknown friend")
	// ErrUnknownGroup means a group is neither @all nor in the table.
	ErrUnknownGroup = errors.New("unknown group")
	// ErrNotMember means a message names a group its sender is not in.
	ErrNotMember = errors.New("not a member")
	// ErrSelf means a message was addressed to this instance itself.
	ErrSelf = errors.New("you cannot send a message to yourself")
	// ErrNoAck means a friend did not acknowledge a message in time and the
	// connection was given up as dead (the message is sent again).
	ErrNoAck = errors.New("no acknowledgement")
	// ErrForgotten is why a connection closed: the identity it was made
	// with was forgotten (Node.Forget).
	ErrForgotten = errors.New("the identity was forgotten")
	// ErrClosed means the node was stopped.
	ErrClosed = errors.New("p2pchat is stopping")
	// ErrCertRejected means the other side of a connection ended the TLS
	// handshake because it does not accept our certificate: a problem with
	// us in its eyes (we are not in its table, or it pinned another
	// identity for us), not an attack on us.
	ErrCertRejected = errors.New("our certificate was refused")
	// ErrUpgrade means the friend's p2pchat speaks another version of the
	// protocol: one of the two must upgrade.
	ErrUpgrade = errors.New("different p2pchat versions: upgrade")
)

// ListenError means the node could not listen on its address.
type ListenError struct {
	Name string
	Addr string
	Err  error
}

func (e *ListenError) Error() string {
	return fmt.Sprintf("cannot listen on %s as %s: %s", e.Addr, e.Name, reason(e.Err))
}

func (e *ListenError) Unwrap() error { return e.Err }

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

// RefusedError means the friend's instance refused our connection.
type RefusedError struct {
	Reason string // as the friend sent it: not to be printed unescaped
}

func (e *RefusedError) Error() string { return "refused: " + e.Reason }
