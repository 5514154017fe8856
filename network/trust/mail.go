package trust

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"p2pchat/network/wire"
)

// Sealed mail. A letter for a friend who cannot be reached directly is
// signed with the sender's identity key (Ed25519) and sealed with HPKE
// (RFC 9180: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305) to
// the recipient's mailbox key, a separate X25519 key in the data directory.
// The mailbox key travels in a card, signed by the identity key, so a
// friend who carries the letter can neither read nor alter it, and cannot
// pass off a mailbox key of its own.

// mailboxKeyFile holds the mailbox key, owner-only, beside the identity.
const mailboxKeyFile = "mailbox.key"

// The HPKE suite of every letter; the KEM, DHKEM(X25519, HKDF-SHA256),
// comes with the X25519 keys (hpke.NewDHKEMPublicKey).
var (
	mailKDF  = hpke.HKDFSHA256()
	mailAEAD = hpke.ChaCha20Poly1305()
)

// ErrBadMail means a letter or a card does not open or verify: altered on
// the way, sealed to someone else, or signed by someone else.
var ErrBadMail = errors.New("mail does not verify")

// loadMailbox reads the mailbox key in dir, creating it on first use.
func loadMailbox(dir string) (*ecdh.PrivateKey, error) {
	path := filepath.Join(dir, mailboxKeyFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return nil, err
		}
		if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})); err != nil {
			return nil, fmt.Errorf("cannot save the mailbox key: %w", err)
		}
		return key, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cannot read the mailbox key: %w", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("mailbox key %s is damaged: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("mailbox key %s is damaged: %w", path, err)
	}
	key, ok := k.(*ecdh.PrivateKey)
	if !ok || key.Curve() != ecdh.X25519() {
		return nil, fmt.Errorf("mailbox key %s is not an X25519 key", path)
	}
	return key, nil
}

// Card returns this instance's card: its certificate and mailbox key,
// signed. reachable says whether it accepts connections from outside.
func (id *Identity) Card(reachable bool, issued time.Time) wire.Card {
	c := wire.Card{Reachable: reachable, Issued: issued.Truncate(time.Millisecond), Cert: id.Cert.Certificate[0]}
	copy(c.Mailbox[:], id.mailbox.PublicKey().Bytes())
	copy(c.Sig[:], ed25519.Sign(id.signer(), c.AppendSigned(nil)))
	return c
}

func (id *Identity) signer() ed25519.PrivateKey { return id.Cert.PrivateKey.(ed25519.PrivateKey) }

// Contact is what a verified card says about its owner.
type Contact struct {
	ID        ID
	Name      string // the certificate's common name
	Reachable bool
	Issued    time.Time
	key       ed25519.PublicKey
	mailbox   hpke.PublicKey
}

// VerifyCard checks that c is signed by the key of the certificate it
// carries, and returns what it says. Whether that certificate is the one
// pinned for its name is the caller's check (Pins.Check).
func VerifyCard(c wire.Card) (Contact, *x509.Certificate, error) {
	cert, err := x509.ParseCertificate(c.Cert)
	if err != nil {
		return Contact{}, nil, fmt.Errorf("%w: card certificate: %v", ErrBadMail, err)
	}
	key, ok := cert.PublicKey.(ed25519.PublicKey)
	if !ok {
		return Contact{}, nil, fmt.Errorf("%w: card certificate has no Ed25519 key", ErrBadMail)
	}
	if !ed25519.Verify(key, c.AppendSigned(nil), c.Sig[:]) {
		return Contact{}, nil, fmt.Errorf("%w: card signature", ErrBadMail)
	}
	pub, err := ecdh.X25519().NewPublicKey(c.Mailbox[:])
	if err != nil {
		return Contact{}, nil, fmt.Errorf("%w: card mailbox key: %v", ErrBadMail, err)
	}
	mailbox, err := hpke.NewDHKEMPublicKey(pub)
	if err != nil {
		return Contact{}, nil, fmt.Errorf("%w: card mailbox key: %v", ErrBadMail, err)
	}
	return Contact{
		ID:        CertID(c.Cert),
		Name:      cert.Subject.CommonName,
		Reachable: c.Reachable,
		Issued:    c.Issued,
		key:       key,
		mailbox:   mailbox,
	}, cert, nil
}

// mailInfo binds a sealed letter to its recipient.
func mailInfo(to ID) []byte { return append([]byte("p2pchat mail\x00"), to[:]...) }

// Seal signs l as id (l.From must be id's ID) and seals it to to's mailbox.
func (id *Identity) Seal(to Contact, l wire.Letter) ([]byte, error) {
	if ID(l.From) != id.ID || ID(l.To) != to.ID {
		return nil, errors.New("seal: the letter's sender or recipient is not the one sealing or sealed to")
	}
	var sig [wire.SigSize]byte
	copy(sig[:], ed25519.Sign(id.signer(), l.AppendSigned(nil)))
	return hpke.Seal(to.mailbox, mailKDF, mailAEAD, mailInfo(to.ID), wire.AppendLetter(nil, l, sig))
}

// Open opens mail sealed to id, checks that the letter inside was signed
// by from, the sender the outside of the mail names, and that the outside
// tells the truth about it.
func (id *Identity) Open(m wire.Mail, from Contact) (wire.Letter, error) {
	if ID(m.To) != id.ID {
		return wire.Letter{}, fmt.Errorf("%w: sealed to %s, not to us", ErrBadMail, ID(m.To))
	}
	if ID(m.From) != from.ID {
		return wire.Letter{}, fmt.Errorf("%w: from %s, not %s", ErrBadMail, ID(m.From), from.ID)
	}
	priv, err := hpke.NewDHKEMPrivateKey(id.mailbox)
	if err != nil {
		return wire.Letter{}, err
	}
	plain, err := hpke.Open(priv, mailKDF, mailAEAD, mailInfo(id.ID), m.Sealed)
	if err != nil {
		return wire.Letter{}, fmt.Errorf("%w: it does not open (%v)", ErrBadMail, err)
	}
	l, sig, err := wire.ParseLetter(plain)
	if err != nil {
		return wire.Letter{}, fmt.Errorf("%w: %v", ErrBadMail, err)
	}
	if !ed25519.Verify(from.key, l.AppendSigned(nil), sig[:]) {
		return wire.Letter{}, fmt.Errorf("%w: the letter is not signed by %s", ErrBadMail, from.Name)
	}
	if l.From != m.From || l.To != m.To || l.Stream != m.Stream || l.Seq != m.Seq {
		return wire.Letter{}, fmt.Errorf("%w: the outside of the mail does not match the letter", ErrBadMail)
	}
	return l, nil
}

// Receipt returns id's signed receipt for message (stream, seq) from to.
func (id *Identity) Receipt(to ID, stream wire.StreamID, seq uint64) wire.Receipt {
	r := wire.Receipt{From: id.ID, To: to, Stream: stream, Seq: seq}
	copy(r.Sig[:], ed25519.Sign(id.signer(), r.AppendSigned(nil)))
	return r
}

// VerifyReceipt checks that r is signed by by, who it says received the
// message.
func VerifyReceipt(r wire.Receipt, by Contact) error {
	if ID(r.From) != by.ID || !ed25519.Verify(by.key, r.AppendSigned(nil), r.Sig[:]) {
		return fmt.Errorf("%w: a receipt not signed by %s", ErrBadMail, by.Name)
	}
	return nil
}

// Contact returns what this instance's own card says, as a friend sees it.
func (id *Identity) Contact(reachable bool) Contact {
	c, _, err := VerifyCard(id.Card(reachable, time.Now()))
	if err != nil {
		panic("trust: own card does not verify: " + err.Error())
	}
	return c
}
