package network

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// PinSource says where the ID a name is bound to comes from.
type PinSource int

const (
	NotPinned        PinSource = iota // no ID yet: the first one seen will be pinned
	PinnedByTable                     // the table gives the ID
	PinnedOnFirstUse                  // known_peers recorded the first ID seen
)

func (s PinSource) String() string {
	switch s {
	case PinnedByTable:
		return "pinned by the table"
	case PinnedOnFirstUse:
		return "pinned on first use"
	}
	return "not yet pinned"
}

// IdentityError means a peer's certificate does not match the friend it
// claims to be, or names nobody we know. The connection is closed before
// any message is exchanged.
type IdentityError struct {
	Name      string    // the friend it claimed, or reached as
	Presented ID        // the ID of the certificate it presented
	Expected  ID        // the ID pinned for Name, if any
	Source    PinSource // where Expected comes from
	Problem   string    // what is wrong, when it is not a mismatch of IDs
}

func (e *IdentityError) Error() string {
	if e.Problem != "" {
		return fmt.Sprintf("identity %s: %s", e.Presented, e.Problem)
	}
	return fmt.Sprintf("%s presented identity %s, but %s is %s to %s", e.Name, e.Presented, e.Name, e.Source, e.Expected)
}

// ErrNoCertificate means a TLS peer presented no certificate.
var ErrNoCertificate = errors.New("no certificate presented")

// pinned returns the ID name is bound to and where that comes from.
func (n *Node) pinned(name string) (ID, PinSource) {
	if f, ok := n.cfg.Table.Lookup(name); ok && !f.ID.IsZero() {
		return f.ID, PinnedByTable
	}
	if id, ok := n.known.Lookup(name); ok {
		return id, PinnedOnFirstUse
	}
	return ID{}, NotPinned
}

// checkCert reports whether cert may speak as the friend called name: its
// common name must be name, and its ID the one pinned for name, if any.
func (n *Node) checkCert(name string, cert *x509.Certificate) error {
	id := CertID(cert.Raw)
	if cn := cert.Subject.CommonName; cn != name {
		return &IdentityError{Name: name, Presented: id, Problem: fmt.Sprintf("its certificate names %q, not %s", cn, name)}
	}
	if want, src := n.pinned(name); src != NotPinned && want != id {
		return &IdentityError{Name: name, Presented: id, Expected: want, Source: src}
	}
	return nil
}

// pinFirstUse binds name to id if nothing binds it yet, and reports whether
// it did. A concurrent first contact with another ID loses.
func (n *Node) pinFirstUse(name string, id ID) (bool, error) {
	if _, src := n.pinned(name); src == PinnedByTable {
		return false, nil
	}
	got, pinned, err := n.known.pin(name, id)
	if err != nil {
		return false, err
	}
	if got != id {
		return false, &IdentityError{Name: name, Presented: id, Expected: got, Source: PinnedOnFirstUse}
	}
	return pinned, nil
}

// Forget removes the identity pinned on first use for name, so that the
// next one seen is accepted. A pin in the table cannot be forgotten here.
func (n *Node) Forget(name string) error {
	if _, ok := n.outboxes[name]; !ok {
		return fmt.Errorf("%w %q", ErrUnknownFriend, name)
	}
	if _, src := n.pinned(name); src == PinnedByTable {
		return fmt.Errorf("%s's identity is pinned by the table: change it there", name)
	}
	had, err := n.known.forget(name)
	if err != nil {
		return err
	}
	if !had {
		return fmt.Errorf("no identity is pinned for %s yet", name)
	}
	n.log.Warn("identity forgotten", "friend", name)
	n.outboxes[name].reached() // whatever waits for them may go now
	return nil
}

// ID is this instance's own identity.
func (n *Node) ID() ID { return n.cfg.Identity.ID }

// serverTLS accepts any client that presents a certificate naming a friend
// whose pin, if any, it matches; the hello must then carry that name.
func (n *Node) serverTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{n.cfg.Identity.Cert},
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrNoCertificate
			}
			cert := cs.PeerCertificates[0]
			cn := cert.Subject.CommonName
			if _, ok := n.outboxes[cn]; !ok {
				return &IdentityError{Presented: CertID(cert.Raw), Problem: fmt.Sprintf("its certificate names %q, who is not in the table", cn)}
			}
			return n.checkCert(cn, cert)
		},
	}
}

// clientTLS accepts only a server whose certificate is friend's. There is
// no certificate authority: the check is the pin, in VerifyConnection.
func (n *Node) clientTLS(friend string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{n.cfg.Identity.Cert},
		InsecureSkipVerify: true, // replaced by VerifyConnection's pin check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrNoCertificate
			}
			return n.checkCert(friend, cs.PeerCertificates[0])
		},
	}
}
