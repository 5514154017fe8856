package trust

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"unicode/utf8"
)

// PinSource says where the ID a name is bound to comes from.
type PinSource int

const (
	NotPinned        PinSource = iota // no ID yet: the first one seen will be pinned
	PinnedByTable                     // the table gives the ID
	PinnedOnFirstUse                  // known_peers recorded the first ID seen
	Forgotten                         // the pin was forgotten: the next ID waits to be accepted
)

func (s PinSource) String() string {
	switch s {
	case PinnedByTable:
		return "pinned by the table"
	case PinnedOnFirstUse:
		return "pinned on first use"
	case Forgotten:
		return "forgotten, waiting for a new identity to be accepted"
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

// Pins binds friends' names to IDs: by the table where it gives one, else
// by KnownPeers, which pins the first ID seen (trust on first use). It
// makes the TLS configurations that check them.
type Pins struct {
	self  *Identity
	table func(name string) (ID, bool) // the table's ID for name, if it gives one
	known *KnownPeers
}

// NewPins returns the pins of an instance with identity self: table gives
// the IDs the table pins, known records the others.
func NewPins(self *Identity, table func(name string) (ID, bool), known *KnownPeers) *Pins {
	return &Pins{self: self, table: table, known: known}
}

// Pinned returns the ID name is bound to and where that comes from.
func (p *Pins) Pinned(name string) (ID, PinSource) {
	if id, ok := p.table(name); ok && !id.IsZero() {
		return id, PinnedByTable
	}
	if id, ok := p.known.Lookup(name); ok {
		return id, PinnedOnFirstUse
	}
	if p.known.forgotten(name) {
		return ID{}, Forgotten
	}
	return ID{}, NotPinned
}

// Check reports whether cert may speak as the friend called name: its
// common name must be name, and its ID the one pinned for name, if any.
func (p *Pins) Check(name string, cert *x509.Certificate) error {
	id := CertID(cert.Raw)
	if cn := cert.Subject.CommonName; cn != name {
		return &IdentityError{Name: name, Presented: id, Problem: fmt.Sprintf("its certificate names %q, not %s", cut(cn), name)}
	}
	switch want, src := p.Pinned(name); {
	case (src == PinnedByTable || src == PinnedOnFirstUse) && want != id:
		return &IdentityError{Name: name, Presented: id, Expected: want, Source: src}
	case src == Forgotten:
		// Refused in the TLS handshake, before anything is sent: a client
		// sends its first messages right after it (see network's dial).
		return &IdentityError{Name: name, Presented: id, Source: Forgotten,
			Problem: fmt.Sprintf("%s's identity was forgotten, and a new one is pinned only when accepted", name)}
	}
	return nil
}

// PinFirstUse binds name to id if nothing binds it yet, and reports whether
// it did. A concurrent first contact with another ID loses. After Forget,
// nothing is pinned by itself: the identity that claims name next is
// refused until Accept pins it.
func (p *Pins) PinFirstUse(name string, id ID) (bool, error) {
	switch _, src := p.Pinned(name); src {
	case PinnedByTable:
		return false, nil
	case Forgotten:
		return false, &IdentityError{Name: name, Presented: id, Source: Forgotten,
			Problem: fmt.Sprintf("%s's identity was forgotten, and a new one is pinned only when accepted", name)}
	}
	got, pinned, err := p.known.pin(name, id)
	if err != nil {
		return false, err
	}
	if got != id {
		return false, &IdentityError{Name: name, Presented: id, Expected: got, Source: PinnedOnFirstUse}
	}
	return pinned, nil
}

// Forget removes the identity pinned on first use for name and returns it.
// The next identity that claims name is not pinned by itself (an impostor
// that keeps trying would win the race): Accept pins it. A pin in the
// table cannot be forgotten here.
func (p *Pins) Forget(name string) (ID, error) {
	id, src := p.Pinned(name)
	switch src {
	case PinnedByTable:
		return ID{}, fmt.Errorf("%s's identity is pinned by the table: change it there", name)
	case NotPinned:
		return ID{}, fmt.Errorf("no identity is pinned for %s yet", name)
	case Forgotten:
		return ID{}, fmt.Errorf("%s's identity is already forgotten", name)
	}
	if err := p.known.forget(name); err != nil {
		return ID{}, err
	}
	return id, nil
}

// Accept pins id for name, which has no pin, or had it forgotten: the
// person has checked id with the friend.
func (p *Pins) Accept(name string, id ID) error {
	if id.IsZero() {
		return errors.New("the zero identity cannot be accepted")
	}
	switch want, src := p.Pinned(name); src {
	case PinnedByTable:
		if want == id {
			return nil
		}
		return fmt.Errorf("%s's identity is pinned by the table to %s: change it there", name, want)
	case PinnedOnFirstUse:
		if want == id {
			return nil
		}
		return fmt.Errorf("%s's identity is pinned to %s: forget it first", name, want)
	}
	return p.known.accept(name, id)
}

// ServerConfig accepts any client that presents a certificate naming a
// friend (isFriend) whose pin, if any, it matches; the hello must then
// carry that name.
func (p *Pins) ServerConfig(isFriend func(name string) bool) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{p.self.Cert},
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrNoCertificate
			}
			cert := cs.PeerCertificates[0]
			cn := cert.Subject.CommonName
			if !isFriend(cn) {
				return &IdentityError{Presented: CertID(cert.Raw), Problem: fmt.Sprintf("its certificate names %q, who is not in the table", cut(cn))}
			}
			return p.Check(cn, cert)
		},
	}
}

// ClientConfig accepts only a server whose certificate is friend's. There
// is no certificate authority: the check is the pin, in VerifyConnection.
func (p *Pins) ClientConfig(friend string) *tls.Config {
	return &tls.Config{
		MinVersion:         tls.VersionTLS13,
		Certificates:       []tls.Certificate{p.self.Cert},
		InsecureSkipVerify: true, // replaced by VerifyConnection's pin check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return ErrNoCertificate
			}
			return p.Check(friend, cs.PeerCertificates[0])
		},
	}
}

// maxShown is how much of a name a stranger chose is shown or logged.
const maxShown = 64

// cut shortens s, a name from a stranger's certificate, to maxShown bytes
// at most, on a character boundary, marking the cut.
func cut(s string) string {
	if len(s) <= maxShown {
		return s
	}
	i := maxShown
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + "…"
}
