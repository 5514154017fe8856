package wire

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the version this package speaks, sent in every hello.
// Version 1 numbered messages per pair of friends, from 1 for ever; 2
// identifies them by the sender's stream (see Delivery); 3 adds the group
// tag to a message.
const Version = 3

// Limits of the wire protocol. A frame over MaxFrameSize is refused before
// its body is read or allocated.
const (
	MaxMessageRunes = 250                           // characters in one message
	MaxMessageBytes = MaxMessageRunes * utf8.UTFMax // its UTF-8 encoding, worst case
	MaxFrameSize    = 2048                          // type byte plus payload
	maxReasonBytes  = 200                           // text of a refuse frame
)

// helloMagic opens every hello, so that a stray client of another protocol
// is recognised at once.
const helloMagic = "p2pc"

// Frame types; each is documented with its payload layout in doc.go.
const (
	TypeHello   = 1
	TypeWelcome = 2
	TypeMessage = 3
	TypeAck     = 4
	TypeRefuse  = 5
)

// Errors of the frame codec. Each closes the connection it came from.
var (
	// ErrFrameTooLarge means a frame announced a size over MaxFrameSize.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrBadFrame means a frame's contents do not follow the protocol.
	ErrBadFrame = errors.New("malformed frame")
)

// frame is one decoded frame: one of hello, welcome, message, ack, refuse.
type Frame interface {
	Type() byte
	appendPayload(b []byte) []byte
}

type Hello struct {
	Version uint8
	Name    string
}

type Welcome struct {
	Version uint8
	Name    string
}

// streamID is a sender's stream: 16 random bytes, new at every start.
type StreamID [16]byte

func (s StreamID) String() string { return hex.EncodeToString(s[:]) }

type Message struct {
	Stream StreamID
	Seq    uint64    // from 1 within the stream
	Low    uint64    // every message of the stream up to Low was acknowledged
	Sent   time.Time // sender's clock, millisecond precision
	Group  string    // the group it was written to, without '@' ("all" for @all); "" for one friend
	Text   string
}

type Ack struct {
	Stream StreamID
	Seq    uint64
}

// messageHeader is the size of a message frame's payload before the group
// tag; ackSize is an ack frame's payload.
const (
	messageHeader = 16 + 8 + 8 + 8 + 1
	ackSize       = 16 + 8
)

// AllGroup is the group tag of a message written to @all: every friend in
// the table. No group in a table may take the name.
const AllGroup = "all"

// MaxSeqJump is how far past the last sequence number seen in a stream a
// message may be: numbers go up by one, so a larger jump is malformed, and
// no arithmetic on them can come near wrapping.
const MaxSeqJump = 1 << 32

type Refuse struct {
	Reason string
}

func (Hello) Type() byte   { return TypeHello }
func (Welcome) Type() byte { return TypeWelcome }
func (Message) Type() byte { return TypeMessage }
func (Ack) Type() byte     { return TypeAck }
func (Refuse) Type() byte  { return TypeRefuse }

func (f Hello) appendPayload(b []byte) []byte {
	b = append(b, helloMagic...)
	b = append(b, f.Version)
	return append(b, f.Name...)
}

func (f Welcome) appendPayload(b []byte) []byte {
	b = append(b, f.Version)
	return append(b, f.Name...)
}

func (f Message) appendPayload(b []byte) []byte {
	b = append(b, f.Stream[:]...)
	b = binary.BigEndian.AppendUint64(b, f.Seq)
	b = binary.BigEndian.AppendUint64(b, f.Low)
	b = binary.BigEndian.AppendUint64(b, uint64(f.Sent.UnixMilli()))
	b = append(b, byte(len(f.Group)))
	b = append(b, f.Group...)
	return append(b, f.Text...)
}

func (f Ack) appendPayload(b []byte) []byte {
	b = append(b, f.Stream[:]...)
	return binary.BigEndian.AppendUint64(b, f.Seq)
}

func (f Refuse) appendPayload(b []byte) []byte {
	r := f.Reason
	if len(r) > maxReasonBytes {
		r = r[:maxReasonBytes]
	}
	return append(b, r...)
}

// appendFrame appends f, with its length prefix, to b.
func AppendFrame(b []byte, f Frame) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, f.Type())
	b = f.appendPayload(b)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// writeFrame writes f to w without flushing.
func WriteFrame(w *bufio.Writer, f Frame) error {
	buf := w.AvailableBuffer()
	_, err := w.Write(AppendFrame(buf, f))
	return err
}

// readFrame reads and decodes one frame. buf is scratch space of at least
// MaxFrameSize bytes; the returned frame does not refer to it.
func ReadFrame(r *bufio.Reader, buf []byte) (Frame, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n > MaxFrameSize {
		return nil, fmt.Errorf("%w: %d bytes announced, limit %d", ErrFrameTooLarge, n, MaxFrameSize)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrBadFrame)
	}
	body := buf[:n]
	if _, err := io.ReadFull(r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return decodeFrame(body[0], body[1:])
}

// decodeFrame decodes the payload p of a frame of type typ.
func decodeFrame(typ byte, p []byte) (Frame, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadFrame, fmt.Sprintf(format, args...))
	}
	switch typ {
	case TypeHello:
		if len(p) < len(helloMagic)+1 || string(p[:len(helloMagic)]) != helloMagic {
			return nil, bad("not a p2pchat hello")
		}
		p = p[len(helloMagic):]
		name := string(p[1:])
		if err := CheckName(name); err != nil {
			return nil, bad("hello: %v", err)
		}
		return Hello{Version: p[0], Name: name}, nil
	case TypeWelcome:
		if len(p) < 1 {
			return nil, bad("short welcome")
		}
		name := string(p[1:])
		if err := CheckName(name); err != nil {
			return nil, bad("welcome: %v", err)
		}
		return Welcome{Version: p[0], Name: name}, nil
	case TypeMessage:
		if len(p) < messageHeader {
			return nil, bad("short message")
		}
		glen := int(p[messageHeader-1])
		if len(p) < messageHeader+glen {
			return nil, bad("message with a group tag of %d bytes in %d", glen, len(p)-messageHeader)
		}
		m := Message{
			Seq:   binary.BigEndian.Uint64(p[16:]),
			Low:   binary.BigEndian.Uint64(p[24:]),
			Sent:  time.UnixMilli(int64(binary.BigEndian.Uint64(p[32:]))),
			Group: string(p[messageHeader : messageHeader+glen]),
			Text:  string(p[messageHeader+glen:]),
		}
		copy(m.Stream[:], p)
		if glen > 0 {
			if err := CheckName(m.Group); err != nil {
				return nil, bad("message group tag: %v", err)
			}
		}
		switch {
		case m.Stream == StreamID{}:
			return nil, bad("message without a stream")
		case m.Seq == 0 || m.Low >= m.Seq:
			return nil, bad("message %d with low-water mark %d", m.Seq, m.Low)
		}
		if err := CheckText(m.Text); err != nil {
			return nil, bad("message: %v", err)
		}
		return m, nil
	case TypeAck:
		if len(p) != ackSize {
			return nil, bad("ack of %d bytes", len(p))
		}
		a := Ack{Seq: binary.BigEndian.Uint64(p[16:])}
		copy(a.Stream[:], p)
		return a, nil
	case TypeRefuse:
		if len(p) > maxReasonBytes {
			return nil, bad("refuse reason of %d bytes", len(p))
		}
		return Refuse{Reason: string(p)}, nil
	default:
		return decodeMailFrame(typ, p)
	}
}

// Errors of CheckText.
var (
	// ErrEmptyMessage means a message has no text, or only spaces.
	ErrEmptyMessage = errors.New("empty message")
	// ErrNotUTF8 means a message's text is not valid UTF-8.
	ErrNotUTF8 = errors.New("message is not valid UTF-8")
	// ErrMessageTooLong means a message is over MaxMessageRunes characters.
	ErrMessageTooLong = errors.New("message too long")
)

// CheckText reports whether text may be sent as a message.
func CheckText(text string) error {
	if strings.TrimSpace(text) == "" {
		return ErrEmptyMessage
	}
	if !utf8.ValidString(text) {
		return ErrNotUTF8
	}
	if n := utf8.RuneCountInString(text); n > MaxMessageRunes || len(text) > MaxMessageBytes {
		return fmt.Errorf("%w: %d characters, at most %d", ErrMessageTooLong, n, MaxMessageRunes)
	}
	return nil
}

// MaxNameLen is the longest friend name the table and the hello accept.
const MaxNameLen = 32

// CheckName accepts 1 to MaxNameLen letters, digits, '_', '-' and '.'.
// Names never contain '/', spaces or control characters, so "name/message"
// splits unambiguously and a name is safe to print.
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("bad name %q: want 1 to %d characters", name, MaxNameLen)
	}
	for _, c := range []byte(name) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-', c == '.':
		default:
			return fmt.Errorf("bad name %q: use only letters, digits, '_', '-' and '.'", name)
		}
	}
	if name == "." || name == ".." {
		// A name is also a directory's name in the data directory.
		return fmt.Errorf("bad name %q: it names a directory", name)
	}
	return nil
}

// ParseFrame decodes one whole frame as AppendFrame wrote it, such as one
// kept in a database.
func ParseFrame(b []byte) (Frame, error) {
	if len(b) < 5 || int(binary.BigEndian.Uint32(b)) != len(b)-4 {
		return nil, fmt.Errorf("%w: a stored frame of %d bytes", ErrBadFrame, len(b))
	}
	if len(b)-4 > MaxFrameSize {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrFrameTooLarge, len(b)-4, MaxFrameSize)
	}
	return decodeFrame(b[4], b[5:])
}
