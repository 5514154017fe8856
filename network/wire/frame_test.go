package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// testStream is a stream ID for tests.
var testStream = StreamID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

var sampleFrames = []Frame{
	Hello{Version: Version, Name: "user_1"},
	Welcome{Version: Version, Name: "user_2"},
	Message{Stream: testStream, Seq: 1, Sent: time.UnixMilli(1700000000123), Text: "hi"},
	Message{Stream: testStream, Seq: 1<<64 - 1, Low: 1<<64 - 2, Sent: time.UnixMilli(0), Text: "tab\t/slash/ \x1b[2J é 日本 " + strings.Repeat("x", 100)},
	Message{Stream: testStream, Seq: 2, Low: 1, Sent: time.UnixMilli(1700000000456), Group: "trip", Text: "to the group"},
	Message{Stream: testStream, Seq: 3, Low: 1, Sent: time.UnixMilli(1700000000789), Group: AllGroup, Text: "everyone"},
	Message{Stream: testStream, Seq: 4, Low: 3, Sent: time.UnixMilli(1), Group: strings.Repeat("g", MaxNameLen), Text: strings.Repeat("日", MaxMessageRunes)},
	Ack{Stream: testStream, Seq: 42},
	Refuse{Reason: "no"},
	Refuse{},
}

func TestFrameRoundTrip(t *testing.T) {
	var b []byte
	for _, f := range sampleFrames {
		b = AppendFrame(b, f)
	}
	r := bufio.NewReader(bytes.NewReader(b))
	buf := make([]byte, MaxFrameSize)
	for _, want := range sampleFrames {
		got, err := ReadFrame(r, buf)
		if err != nil {
			t.Fatalf("reading %#v: %v", want, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %#v, want %#v", got, want)
		}
	}
	if _, err := ReadFrame(r, buf); err != io.EOF {
		t.Errorf("at the end: %v, want EOF", err)
	}
}

func TestReadFrameRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"oversized", []byte{0, 0, 0x08, 0x01, TypeMessage}, ErrFrameTooLarge},
		{"empty", []byte{0, 0, 0, 0}, ErrBadFrame},
		{"unknown type", []byte{0, 0, 0, 1, 77}, ErrBadFrame},
		{"short ack", []byte{0, 0, 0, 3, TypeAck, 1, 2}, ErrBadFrame},
		{"short message", []byte{0, 0, 0, 4, TypeMessage, 1, 2, 3}, ErrBadFrame},
		{"message without a stream", AppendFrame(nil, Message{Seq: 1, Text: "x"}), ErrBadFrame},
		{"message numbered 0", AppendFrame(nil, Message{Stream: testStream, Text: "x"}), ErrBadFrame},
		{"low-water mark at the message", AppendFrame(nil, Message{Stream: testStream, Seq: 3, Low: 3, Text: "x"}), ErrBadFrame},
		{"invalid UTF-8", AppendFrame(nil, Message{Stream: testStream, Seq: 1, Text: "a\xffb"}), ErrBadFrame},
		{"only spaces", AppendFrame(nil, Message{Stream: testStream, Seq: 1, Text: "  \t "}), ErrBadFrame},
		{"group tag past the end", groupTagged(40, "trip"), ErrBadFrame},
		{"group tag with a slash", AppendFrame(nil, Message{Stream: testStream, Seq: 1, Group: "a/b", Text: "x"}), ErrBadFrame},
		{"group tag of a directory", AppendFrame(nil, Message{Stream: testStream, Seq: 1, Group: "..", Text: "x"}), ErrBadFrame},
		{"group tag too long", AppendFrame(nil, Message{Stream: testStream, Seq: 1, Group: strings.Repeat("g", MaxNameLen+1), Text: "x"}), ErrBadFrame},
		{"group tag and no text", AppendFrame(nil, Message{Stream: testStream, Seq: 1, Group: "trip"}), ErrBadFrame},
		{"hello without name", []byte{0, 0, 0, 6, TypeHello, 'p', '2', 'p', 'c', 1}, ErrBadFrame},
		{"hello bad name", append([]byte{0, 0, 0, 9, TypeHello, 'p', '2', 'p', 'c', 1}, "a/b"...), ErrBadFrame},
		{"truncated body", []byte{0, 0, 0, 9, TypeAck, 1}, io.ErrUnexpectedEOF},
		{"truncated header", []byte{0, 0}, io.ErrUnexpectedEOF},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadFrame(bufio.NewReader(bytes.NewReader(tc.in)), make([]byte, MaxFrameSize))
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// groupTagged is a message frame whose group tag announces glen bytes and
// holds group, with no text after it.
func groupTagged(glen byte, group string) []byte {
	b := AppendFrame(nil, Message{Stream: testStream, Seq: 1, Group: group})
	b[4+messageHeader] = glen
	return b
}

// FuzzReadFrame feeds arbitrary bytes to the decoder: it must never panic,
// never return a frame it could not encode back to the same bytes, and never
// accept an oversized or invalid message.
func FuzzReadFrame(f *testing.F) {
	for _, fr := range sampleFrames {
		f.Add(AppendFrame(nil, fr))
	}
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Add([]byte{0, 0, 0, 1, TypeAck})
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		buf := make([]byte, MaxFrameSize)
		for {
			fr, err := ReadFrame(r, buf)
			if err != nil {
				return
			}
			if m, ok := fr.(Message); ok {
				if err := CheckText(m.Text); err != nil {
					t.Fatalf("accepted a bad message: %v", err)
				}
			}
			again, err := ReadFrame(bufio.NewReader(bytes.NewReader(AppendFrame(nil, fr))), make([]byte, MaxFrameSize))
			if err != nil || !reflect.DeepEqual(again, fr) {
				t.Fatalf("%#v does not round-trip: %#v, %v", fr, again, err)
			}
		}
	})
}

func TestCheckName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"user_1", true}, {"a.b-c", true}, {"x", true},
		{"", false}, {".", false}, {"..", false}, {"a/b", false}, {"a b", false},
		{strings.Repeat("n", MaxNameLen), true}, {strings.Repeat("n", MaxNameLen+1), false},
	} {
		if err := CheckName(tc.name); (err == nil) != tc.ok {
			t.Errorf("CheckName(%q) = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}
