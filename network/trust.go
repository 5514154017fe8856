package network

import (
	"fmt"

	"p2pchat/network/trust"
)

// Identities and pins, from package trust.
type (
	// ID names an instance: the SHA-256 of its certificate.
	ID = trust.ID
	// Identity is an instance's key pair and certificate.
	Identity = trust.Identity
	// IdentityError means a certificate does not match the friend it claims
	// to be, or names nobody we know.
	IdentityError = trust.IdentityError
	// PinSource says where the ID a name is bound to comes from.
	PinSource = trust.PinSource
	// KnownPeers is the record of identities pinned on first use.
	KnownPeers = trust.KnownPeers
)

// Where a pin comes from.
const (
	NotPinned        = trust.NotPinned
	PinnedByTable    = trust.PinnedByTable
	PinnedOnFirstUse = trust.PinnedOnFirstUse
	Forgotten        = trust.Forgotten
)

// LoadIdentity reads the identity kept in dir, creating it for name on
// first use.
func LoadIdentity(dir, name string) (*Identity, error) { return trust.LoadIdentity(dir, name) }

// HasIdentity reports whether dir holds an identity already.
func HasIdentity(dir string) bool { return trust.HasIdentity(dir) }

// LoadKnownPeers reads the record of identities pinned on first use at
// path; "" keeps it in memory only.
func LoadKnownPeers(path string) (*KnownPeers, error) { return trust.LoadKnownPeers(path) }

// ParseID reads an ID as --id prints it.
func ParseID(s string) (ID, error) { return trust.ParseID(s) }

// Forget removes the identity pinned on first use for name and returns the
// identity it dropped. Every connection with that identity is closed at
// once: what it had not yet delivered it does not deliver as name any
// more. The next identity that claims name is refused, with an
// IdentityError whose Source is Forgotten, until Accept pins it. A pin in
// the table cannot be forgotten here.
func (n *Node) Forget(name string) (ID, error) {
	o, ok := n.outboxes[name]
	if !ok {
		return ID{}, fmt.Errorf("%w %q", ErrUnknownFriend, name)
	}
	id, err := n.pins.Forget(name)
	if err != nil {
		return ID{}, err
	}
	n.log.Warn("identity forgotten", "friend", name, "id", id.String())
	n.mu.Lock()
	for c := range n.inbound[name] {
		c.forgotten.Store(true)
		c.shut()
	}
	n.mu.Unlock()
	o.forgotten() // closes our connection to it; what waits goes to the next one
	return id, nil
}

// Accept pins id for name, a friend with no pin or whose identity was
// forgotten, once the person has checked it with the friend; what waits
// for them goes out now.
func (n *Node) Accept(name string, id ID) error {
	o, ok := n.outboxes[name]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownFriend, name)
	}
	if err := n.pins.Accept(name, id); err != nil {
		return err
	}
	n.log.Warn("identity accepted", "friend", name, "id", id.String())
	o.reached()
	return nil
}

// ID is this instance's own identity.
func (n *Node) ID() ID { return n.cfg.Identity.ID }
