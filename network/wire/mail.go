package wire

import (
	"encoding/binary"
	"fmt"
	"time"
	"unicode/utf8"
)

// Frames for mail that friends carry for each other (see doc.go). The
// sealing and the signatures are package trust's; here are the layouts.
const (
	TypeCard    = 6
	TypeMail    = 7
	TypeHeld    = 8
	TypeReceipt = 9
	TypePing    = 10
	TypeProbe   = 11
	TypeProbed  = 12
)

// Probe asks a friend to dial back, at the address the connection comes
// from and Port, to learn whether we can be reached from outside.
type Probe struct {
	Port uint16
}

// Probed answers a Probe: whether the dial back connected, and the address
// it dialled (ours as the friend sees it).
type Probed struct {
	OK   bool
	Addr string
}

func (Probe) Type() byte  { return TypeProbe }
func (Probed) Type() byte { return TypeProbed }

func (f Probe) appendPayload(b []byte) []byte { return binary.BigEndian.AppendUint16(b, f.Port) }

func (f Probed) appendPayload(b []byte) []byte {
	addr := f.Addr
	if len(addr) > maxProbedAddr {
		addr = addr[:maxProbedAddr]
	}
	return append(append(b, boolByte(f.OK)), addr...)
}

// maxProbedAddr bounds the address in a Probed: an IPv6 address, brackets
// and a port fit.
const maxProbedAddr = 64

// Ping keeps a connection open through a NAT: it carries nothing and needs
// no answer.
type Ping struct{}

func (Ping) Type() byte                    { return TypePing }
func (Ping) appendPayload(b []byte) []byte { return b }

// IDSize is the size of an instance's ID: the SHA-256 of its certificate.
const IDSize = 32

// SigSize is the size of an Ed25519 signature.
const SigSize = 64

// MailboxKeySize is the size of an X25519 public key.
const MailboxKeySize = 32

// Card is what a friend needs to seal mail to an instance: its certificate
// and its mailbox key, signed with the certificate's key.
type Card struct {
	Reachable bool // its owner accepts connections from outside
	Issued    time.Time
	Mailbox   [MailboxKeySize]byte
	Sig       [SigSize]byte
	Cert      []byte // DER
}

// Mail is a sealed letter from From to To, handed to a carrier or by one.
// The carrier sees only this header; Sealed holds the letter, which repeats
// it under the sender's signature.
type Mail struct {
	To, From [IDSize]byte
	Stream   StreamID
	Seq      uint64
	Expires  time.Time // a carrier drops it then
	Sealed   []byte
}

// Held answers a Mail: the carrier recorded it (or refused it, Full).
type Held struct {
	To, From [IDSize]byte
	Stream   StreamID
	Seq      uint64
	Full     bool // over the carrier's budget for the sender: not held
}

// Receipt says that From received To's message (Stream, Seq), signed by
// From. It travels back directly or through any carrier.
type Receipt struct {
	From, To [IDSize]byte
	Stream   StreamID
	Seq      uint64
	Sig      [SigSize]byte
}

func (Card) Type() byte    { return TypeCard }
func (Mail) Type() byte    { return TypeMail }
func (Held) Type() byte    { return TypeHeld }
func (Receipt) Type() byte { return TypeReceipt }

// Payload sizes before the variable part.
const (
	cardHeader  = 1 + 8 + MailboxKeySize + SigSize
	mailHeader  = 2*IDSize + 16 + 8 + 8
	heldSize    = 2*IDSize + 16 + 8 + 1
	receiptSize = 2*IDSize + 16 + 8 + SigSize
)

func (f Card) appendPayload(b []byte) []byte {
	return append(f.appendFields(b), f.Sig[:]...)
}

// AppendSigned appends what the card's signature covers: its fields, after
// a label that keeps them apart from anything else signed.
func (f Card) AppendSigned(b []byte) []byte {
	return f.appendFields(append(b, "p2pchat card\x00"...))
}

func (f Card) appendFields(b []byte) []byte {
	b = append(b, boolByte(f.Reachable))
	b = binary.BigEndian.AppendUint64(b, uint64(f.Issued.UnixMilli()))
	b = append(b, f.Mailbox[:]...)
	return append(b, f.Cert...)
}

func (f Mail) appendPayload(b []byte) []byte {
	b = append(b, f.To[:]...)
	b = append(b, f.From[:]...)
	b = append(b, f.Stream[:]...)
	b = binary.BigEndian.AppendUint64(b, f.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(f.Expires.UnixMilli()))
	return append(b, f.Sealed...)
}

func (f Held) appendPayload(b []byte) []byte {
	b = append(b, f.To[:]...)
	b = append(b, f.From[:]...)
	b = append(b, f.Stream[:]...)
	b = binary.BigEndian.AppendUint64(b, f.Seq)
	return append(b, boolByte(f.Full))
}

func (f Receipt) appendPayload(b []byte) []byte {
	return append(f.appendFields(b), f.Sig[:]...)
}

// AppendSigned appends what the receipt's signature covers: its fields,
// after a label that keeps them apart from anything else signed.
func (f Receipt) AppendSigned(b []byte) []byte {
	return f.appendFields(append(b, "p2pchat receipt\x00"...))
}

func (f Receipt) appendFields(b []byte) []byte {
	b = append(b, f.From[:]...)
	b = append(b, f.To[:]...)
	b = append(b, f.Stream[:]...)
	return binary.BigEndian.AppendUint64(b, f.Seq)
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// decodeMailFrame decodes the frames of this file.
func decodeMailFrame(typ byte, p []byte) (Frame, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadFrame, fmt.Sprintf(format, args...))
	}
	flag := func(b byte) (bool, error) {
		if b > 1 {
			return false, bad("flag %d", b)
		}
		return b == 1, nil
	}
	switch typ {
	case TypeProbe:
		if len(p) != 2 {
			return nil, bad("probe of %d bytes", len(p))
		}
		return Probe{Port: binary.BigEndian.Uint16(p)}, nil
	case TypeProbed:
		if len(p) < 1 || len(p) > 1+maxProbedAddr {
			return nil, bad("probed of %d bytes", len(p))
		}
		ok, err := flag(p[0])
		if err != nil {
			return nil, err
		}
		if !utf8.Valid(p[1:]) {
			return nil, bad("probed address not UTF-8")
		}
		return Probed{OK: ok, Addr: string(p[1:])}, nil
	case TypePing:
		if len(p) != 0 {
			return nil, bad("ping of %d bytes", len(p))
		}
		return Ping{}, nil
	case TypeCard:
		if len(p) <= cardHeader {
			return nil, bad("short card")
		}
		var c Card
		var err error
		if c.Reachable, err = flag(p[0]); err != nil {
			return nil, err
		}
		c.Issued = time.UnixMilli(int64(binary.BigEndian.Uint64(p[1:])))
		copy(c.Mailbox[:], p[9:])
		c.Cert = append([]byte(nil), p[9+MailboxKeySize:len(p)-SigSize]...)
		copy(c.Sig[:], p[len(p)-SigSize:])
		if len(c.Cert) == 0 {
			return nil, bad("card without a certificate")
		}
		return c, nil
	case TypeMail:
		if len(p) <= mailHeader {
			return nil, bad("short mail")
		}
		var m Mail
		copy(m.To[:], p)
		copy(m.From[:], p[IDSize:])
		copy(m.Stream[:], p[2*IDSize:])
		m.Seq = binary.BigEndian.Uint64(p[2*IDSize+16:])
		m.Expires = time.UnixMilli(int64(binary.BigEndian.Uint64(p[2*IDSize+24:])))
		m.Sealed = append([]byte(nil), p[mailHeader:]...)
		if m.Seq == 0 || m.Stream == (StreamID{}) {
			return nil, bad("mail %d without a stream or a number", m.Seq)
		}
		return m, nil
	case TypeHeld:
		if len(p) != heldSize {
			return nil, bad("held of %d bytes", len(p))
		}
		var h Held
		copy(h.To[:], p)
		copy(h.From[:], p[IDSize:])
		copy(h.Stream[:], p[2*IDSize:])
		h.Seq = binary.BigEndian.Uint64(p[2*IDSize+16:])
		var err error
		if h.Full, err = flag(p[heldSize-1]); err != nil {
			return nil, err
		}
		return h, nil
	case TypeReceipt:
		if len(p) != receiptSize {
			return nil, bad("receipt of %d bytes", len(p))
		}
		var r Receipt
		copy(r.From[:], p)
		copy(r.To[:], p[IDSize:])
		copy(r.Stream[:], p[2*IDSize:])
		r.Seq = binary.BigEndian.Uint64(p[2*IDSize+16:])
		copy(r.Sig[:], p[2*IDSize+24:])
		return r, nil
	}
	return nil, bad("unknown frame type %d", typ)
}

// Letter is what a Mail seals: the message, with who wrote it to whom.
// The sender's signature covers all of it (AppendSigned).
type Letter struct {
	From, To [IDSize]byte
	Stream   StreamID
	Seq      uint64
	Low      uint64
	Sent     time.Time
	Group    string // the group it was written to, or ""
	Text     string
}

// AppendSigned appends what the sender's signature covers: the letter's
// encoding, after a label that keeps it apart from anything else signed.
func (l Letter) AppendSigned(b []byte) []byte {
	b = append(b, "p2pchat letter\x00"...)
	return l.append(b)
}

// A letter is from and to, then a message frame's payload.
func (l Letter) append(b []byte) []byte {
	b = append(b, l.From[:]...)
	b = append(b, l.To[:]...)
	return Message{Stream: l.Stream, Seq: l.Seq, Low: l.Low, Sent: l.Sent, Group: l.Group, Text: l.Text}.appendPayload(b)
}

// AppendLetter appends l and its signature sig: the plaintext that is
// sealed.
func AppendLetter(b []byte, l Letter, sig [SigSize]byte) []byte {
	return append(l.append(b), sig[:]...)
}

// ParseLetter decodes what AppendLetter wrote, and checks the message in
// it as a message frame is checked.
func ParseLetter(p []byte) (Letter, [SigSize]byte, error) {
	var sig [SigSize]byte
	if len(p) < 2*IDSize+SigSize {
		return Letter{}, sig, fmt.Errorf("%w: letter: short", ErrBadFrame)
	}
	copy(sig[:], p[len(p)-SigSize:])
	f, err := decodeFrame(TypeMessage, p[2*IDSize:len(p)-SigSize])
	if err != nil {
		return Letter{}, sig, fmt.Errorf("letter: %w", err)
	}
	m := f.(Message)
	l := Letter{Stream: m.Stream, Seq: m.Seq, Low: m.Low, Sent: m.Sent, Group: m.Group, Text: m.Text}
	copy(l.From[:], p)
	copy(l.To[:], p[IDSize:])
	return l, sig, nil
}
