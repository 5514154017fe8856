package network

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode/utf8"

	"p2pchat/network/store"
)

// ProtocolVersion is the version this package speaks, sent in every hello.
// Version 1 numbered messages per pair of friends, from 1 for ever; 2
// identifies them by the sender's stream (see Delivery).
const ProtocolVersion = 2

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
	frameHello   = 1
	frameWelcome = 2
	frameMessage = 3
	frameAck     = 4
	frameRefuse  = 5
)

// Errors of the frame codec. Each closes the connection it came from.
var (
	// ErrFrameTooLarge means a frame announced a size over MaxFrameSize.
	ErrFrameTooLarge = errors.New("frame too large")
	// ErrBadFrame means a frame's contents do not follow the protocol.
	ErrBadFrame = errors.New("malformed frame")
)

// frame is one decoded frame: one of hello, welcome, message, ack, refuse.
type frame interface {
	frameType() byte
	appendPayload(b []byte) []byte
}

type hello struct {
	Version uint8
	Name    string
}

type welcome struct {
	Version uint8
	Name    string
}

// streamID is a sender's stream: 16 random bytes, new at every start.
type streamID = store.StreamID

type message struct {
	Stream streamID
	Seq    uint64    // from 1 within the stream
	Low    uint64    // every message of the stream up to Low was acknowledged
	Sent   time.Time // sender's clock, millisecond precision
	Text   string
}

type ack struct {
	Stream streamID
	Seq    uint64
}

// messageHeader is the size of a message frame's payload before the text;
// ackSize is an ack frame's payload.
const (
	messageHeader = 16 + 8 + 8 + 8
	ackSize       = 16 + 8
)

// maxSeqJump is how far past the last sequence number seen in a stream a
// message may be: numbers go up by one, so a larger jump is malformed, and
// no arithmetic on them can come near wrapping.
const maxSeqJump = 1 << 32

type refuse struct {
	Reason string
}

func (hello) frameType() byte   { return frameHello }
func (welcome) frameType() byte { return frameWelcome }
func (message) frameType() byte { return frameMessage }
func (ack) frameType() byte     { return frameAck }
func (refuse) frameType() byte  { return frameRefuse }

func (f hello) appendPayload(b []byte) []byte {
	b = append(b, helloMagic...)
	b = append(b, f.Version)
	return append(b, f.Name...)
}

func (f welcome) appendPayload(b []byte) []byte {
	b = append(b, f.Version)
	return append(b, f.Name...)
}

func (f message) appendPayload(b []byte) []byte {
	b = append(b, f.Stream[:]...)
	b = binary.BigEndian.AppendUint64(b, f.Seq)
	b = binary.BigEndian.AppendUint64(b, f.Low)
	b = binary.BigEndian.AppendUint64(b, uint64(f.Sent.UnixMilli()))
	return append(b, f.Text...)
}

func (f ack) appendPayload(b []byte) []byte {
	b = append(b, f.Stream[:]...)
	return binary.BigEndian.AppendUint64(b, f.Seq)
}

func (f refuse) appendPayload(b []byte) []byte {
	r := f.Reason
	if len(r) > maxReasonBytes {
		r = r[:maxReasonBytes]
	}
	return append(b, r...)
}

// appendFrame appends f, with its length prefix, to b.
func appendFrame(b []byte, f frame) []byte {
	start := len(b)
	b = append(b, 0, 0, 0, 0, f.frameType())
	b = f.appendPayload(b)
	binary.BigEndian.PutUint32(b[start:], uint32(len(b)-start-4))
	return b
}

// writeFrame writes f to w without flushing.
func writeFrame(w *bufio.Writer, f frame) error {
	buf := w.AvailableBuffer()
	_, err := w.Write(appendFrame(buf, f))
	return err
}

// readFrame reads and decodes one frame. buf is scratch space of at least
// MaxFrameSize bytes; the returned frame does not refer to it.
func readFrame(r *bufio.Reader, buf []byte) (frame, error) {
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
func decodeFrame(typ byte, p []byte) (frame, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadFrame, fmt.Sprintf(format, args...))
	}
	switch typ {
	case frameHello:
		if len(p) < len(helloMagic)+1 || string(p[:len(helloMagic)]) != helloMagic {
			return nil, bad("not a p2pchat hello")
		}
		p = p[len(helloMagic):]
		name := string(p[1:])
		if err := CheckName(name); err != nil {
			return nil, bad("hello: %v", err)
		}
		return hello{Version: p[0], Name: name}, nil
	case frameWelcome:
		if len(p) < 1 {
			return nil, bad("short welcome")
		}
		name := string(p[1:])
		if err := CheckName(name); err != nil {
			return nil, bad("welcome: %v", err)
		}
		return welcome{Version: p[0], Name: name}, nil
	case frameMessage:
		if len(p) < messageHeader {
			return nil, bad("short message")
		}
		m := message{
			Seq:  binary.BigEndian.Uint64(p[16:]),
			Low:  binary.BigEndian.Uint64(p[24:]),
			Sent: time.UnixMilli(int64(binary.BigEndian.Uint64(p[32:]))),
			Text: string(p[messageHeader:]),
		}
		copy(m.Stream[:], p)
		switch {
		case m.Stream == streamID{}:
			return nil, bad("message without a stream")
		case m.Seq == 0 || m.Low >= m.Seq:
			return nil, bad("message %d with low-water mark %d", m.Seq, m.Low)
		}
		if err := checkText(m.Text); err != nil {
			return nil, bad("message: %v", err)
		}
		return m, nil
	case frameAck:
		if len(p) != ackSize {
			return nil, bad("ack of %d bytes", len(p))
		}
		a := ack{Seq: binary.BigEndian.Uint64(p[16:])}
		copy(a.Stream[:], p)
		return a, nil
	case frameRefuse:
		if len(p) > maxReasonBytes {
			return nil, bad("refuse reason of %d bytes", len(p))
		}
		return refuse{Reason: string(p)}, nil
	default:
		return nil, bad("unknown frame type %d", typ)
	}
}

// Errors of CheckText.
var (
	// ErrEmptyMessage means a message has no text.
	ErrEmptyMessage = errors.New("empty message: write something after the '/'")
	// ErrNotUTF8 means a message's text is not valid UTF-8.
	ErrNotUTF8 = errors.New("message is not valid UTF-8")
	// ErrMessageTooLong means a message is over MaxMessageRunes characters.
	ErrMessageTooLong = fmt.Errorf("message too long: at most %d characters", MaxMessageRunes)
)

// checkText reports whether text may be sent as a message.
func checkText(text string) error {
	if text == "" {
		return ErrEmptyMessage
	}
	if !utf8.ValidString(text) {
		return ErrNotUTF8
	}
	if len(text) > MaxMessageBytes {
		return fmt.Errorf("%w (this one has %d)", ErrMessageTooLong, utf8.RuneCountInString(text))
	}
	if n := utf8.RuneCountInString(text); n > MaxMessageRunes {
		return fmt.Errorf("%w (this one has %d)", ErrMessageTooLong, n)
	}
	return nil
}
