package wire

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

var (
	idA = [IDSize]byte{0xa1, 2, 3}
	idC = [IDSize]byte{0xc1, 2, 3}
)

var sampleMailFrames = []Frame{
	Card{Reachable: true, Issued: time.UnixMilli(1700000000123), Mailbox: [MailboxKeySize]byte{9}, Sig: [SigSize]byte{7}, Cert: []byte("der bytes")},
	Card{Issued: time.UnixMilli(0), Cert: []byte{1}},
	Mail{To: idC, From: idA, Stream: testStream, Seq: 3, Expires: time.UnixMilli(1700000000999), Sealed: bytes.Repeat([]byte{0xee}, 1200)},
	Held{To: idC, From: idA, Stream: testStream, Seq: 3},
	Held{To: idC, From: idA, Stream: testStream, Seq: 4, Full: true},
	Receipt{From: idC, To: idA, Stream: testStream, Seq: 3, Sig: [SigSize]byte{1, 2}},
	Ping{},
	Probe{Port: 50000},
	Probed{OK: true, Addr: "198.51.100.1:50000"},
	Probed{Addr: "[2001:db8::1]:50000"},
}

func TestMailFramesRoundTrip(t *testing.T) {
	buf := make([]byte, MaxFrameSize)
	for _, want := range sampleMailFrames {
		got, err := ReadFrame(bufio.NewReader(bytes.NewReader(AppendFrame(nil, want))), buf)
		if err != nil {
			t.Fatalf("reading %T: %v", want, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("got %#v, want %#v", got, want)
		}
	}
}

func TestMailFramesRefused(t *testing.T) {
	held := AppendFrame(nil, Held{To: idC, From: idA, Stream: testStream, Seq: 1})
	held[len(held)-1] = 2
	card := AppendFrame(nil, Card{Issued: time.UnixMilli(5), Cert: []byte{1}})
	card[5] = 7 // the reachable flag
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"card without a certificate", AppendFrame(nil, Card{Issued: time.UnixMilli(5)})},
		{"card with a bad flag", card},
		{"short card", []byte{0, 0, 0, 3, TypeCard, 1, 2}},
		{"mail without a letter", AppendFrame(nil, Mail{To: idC, From: idA, Stream: testStream, Seq: 1, Expires: time.UnixMilli(5)})},
		{"mail numbered 0", AppendFrame(nil, Mail{To: idC, From: idA, Stream: testStream, Expires: time.UnixMilli(5), Sealed: []byte{1}})},
		{"mail without a stream", AppendFrame(nil, Mail{To: idC, From: idA, Seq: 1, Expires: time.UnixMilli(5), Sealed: []byte{1}})},
		{"held with a bad flag", held},
		{"short held", []byte{0, 0, 0, 2, TypeHeld, 1}},
		{"long receipt", append(AppendFrame(nil, Receipt{Seq: 1}), 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := tc.in
			if tc.name == "long receipt" { // fix the length prefix for the extra byte
				in[3]++
			}
			_, err := ReadFrame(bufio.NewReader(bytes.NewReader(in)), make([]byte, MaxFrameSize))
			if !errors.Is(err, ErrBadFrame) {
				t.Errorf("got %v, want ErrBadFrame", err)
			}
		})
	}
}

var sampleLetters = []Letter{
	{From: idA, To: idC, Stream: testStream, Seq: 1, Sent: time.UnixMilli(1700000000123), Text: "hi carol"},
	{From: idA, To: idC, Stream: testStream, Seq: 9, Low: 8, Sent: time.UnixMilli(1), Group: "trip", Text: strings.Repeat("日", MaxMessageRunes)},
}

func TestLetterRoundTrip(t *testing.T) {
	for _, want := range sampleLetters {
		sig := [SigSize]byte{4, 5, 6}
		got, gotSig, err := ParseLetter(AppendLetter(nil, want, sig))
		if err != nil || !reflect.DeepEqual(got, want) || gotSig != sig {
			t.Errorf("got %#v %v %v, want %#v", got, gotSig, err, want)
		}
		if signed := want.AppendSigned(nil); !bytes.HasPrefix(signed, []byte("p2pchat letter\x00")) {
			t.Errorf("signed bytes lack their label: %q", signed[:20])
		}
	}
}

func TestParseLetterRefuses(t *testing.T) {
	ok := sampleLetters[0]
	for _, tc := range []struct {
		name string
		l    Letter
	}{
		{"no stream", Letter{Seq: 1, Text: "x"}},
		{"numbered 0", Letter{Stream: testStream, Text: "x"}},
		{"low not below seq", Letter{Stream: testStream, Seq: 2, Low: 2, Text: "x"}},
		{"bad group", Letter{Stream: testStream, Seq: 1, Group: "../x", Text: "x"}},
		{"empty text", Letter{Stream: testStream, Seq: 1, Text: "  "}},
		{"not UTF-8", Letter{Stream: testStream, Seq: 1, Text: "\xff"}},
		{"too long", Letter{Stream: testStream, Seq: 1, Text: strings.Repeat("x", MaxMessageRunes+1)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.l.From, tc.l.To = ok.From, ok.To
			if _, _, err := ParseLetter(AppendLetter(nil, tc.l, [SigSize]byte{})); !errors.Is(err, ErrBadFrame) {
				t.Errorf("got %v, want ErrBadFrame", err)
			}
		})
	}
	short := AppendLetter(nil, ok, [SigSize]byte{})
	const letterHeader = 2*IDSize + messageHeader // up to the group's length, included
	short[letterHeader-1] = 200                   // a group longer than what follows
	if _, _, err := ParseLetter(short[:letterHeader+SigSize+3]); !errors.Is(err, ErrBadFrame) {
		t.Errorf("group past the end: %v, want ErrBadFrame", err)
	}
}

func FuzzParseLetter(f *testing.F) {
	for _, l := range sampleLetters {
		f.Add(AppendLetter(nil, l, [SigSize]byte{1}))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		l, sig, err := ParseLetter(in)
		if err != nil {
			return
		}
		if err := CheckText(l.Text); err != nil {
			t.Fatalf("accepted a bad text: %v", err)
		}
		again, sig2, err := ParseLetter(AppendLetter(nil, l, sig))
		if err != nil || !reflect.DeepEqual(again, l) || sig2 != sig {
			t.Fatalf("%#v does not round-trip: %#v, %v", l, again, err)
		}
	})
}
