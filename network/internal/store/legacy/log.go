package legacy

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The old write-ahead log. A segment is the file PATH.wal.N (N counting
// up); it starts with segmentMagic and holds records:
//
//	length   uint32, little-endian: bytes of payload
//	checksum uint32, little-endian: CRC-32C of payload
//	payload  one or more ops
//
// An op is a type byte, the friend's name (uvarint length, bytes) and the
// sequence number (uvarint), then for messages the times (varint Unix
// milliseconds: sent, and for received messages, at) and the text (uvarint
// length, bytes).
const segmentMagic = "p2pcwal1"

// maxRecord bounds a record's payload: a longer length is damage.
const maxRecord = 64 << 20

// Op type bytes.
const (
	opAppendOut     = 1
	opMarkDelivered = 2
	opAppendIn      = 3
	opReserve       = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// op is one change the old release logged.
type op interface{ encode(b []byte) []byte }

type appendOut struct {
	Friend string
	Seq    uint64
	Text   string
	Sent   time.Time
}

type markDelivered struct {
	Friend string
	Seq    uint64
}

type appendIn struct {
	Friend   string
	Seq      uint64
	Text     string
	Sent, At time.Time
}

// reserve held back sequence numbers; the new store has no use for it.
type reserve struct {
	Friend string
	Seq    uint64
}

// appendRecord appends ops to b as one record, as the old release wrote
// them; the tests and the fuzz target use it.
func appendRecord(b []byte, ops []op) []byte {
	start := len(b)
	b = append(b, make([]byte, 8)...)
	for _, op := range ops {
		b = op.encode(b)
	}
	payload := b[start+8:]
	binary.LittleEndian.PutUint32(b[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(b[start+4:], crc32.Checksum(payload, castagnoli))
	return b
}

func appendHead(b []byte, typ byte, friend string, seq uint64) []byte {
	b = append(b, typ)
	b = binary.AppendUvarint(b, uint64(len(friend)))
	b = append(b, friend...)
	return binary.AppendUvarint(b, seq)
}

func appendTime(b []byte, t time.Time) []byte {
	var ms int64
	if !t.IsZero() {
		ms = t.UnixMilli()
	}
	return binary.AppendVarint(b, ms)
}

func appendText(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func (op appendOut) encode(b []byte) []byte {
	b = appendHead(b, opAppendOut, op.Friend, op.Seq)
	b = appendTime(b, op.Sent)
	return appendText(b, op.Text)
}

func (op markDelivered) encode(b []byte) []byte {
	return appendHead(b, opMarkDelivered, op.Friend, op.Seq)
}

func (op appendIn) encode(b []byte) []byte {
	b = appendHead(b, opAppendIn, op.Friend, op.Seq)
	b = appendTime(b, op.Sent)
	b = appendTime(b, op.At)
	return appendText(b, op.Text)
}

func (op reserve) encode(b []byte) []byte {
	return appendHead(b, opReserve, op.Friend, op.Seq)
}

// opReader decodes the ops of one payload.
type opReader struct {
	b   []byte
	err error
}

func (r *opReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errors.New("bad number")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *opReader) time() time.Time {
	if r.err != nil {
		return time.Time{}
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errors.New("bad time")
		return time.Time{}
	}
	r.b = r.b[n:]
	return unixMilli(v)
}

func (r *opReader) bytes() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.err = errors.New("length past the end")
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}

// decodeOps decodes a record's payload.
func decodeOps(payload []byte) ([]op, error) {
	r := &opReader{b: payload}
	var ops []op
	for len(r.b) > 0 && r.err == nil {
		typ := r.b[0]
		r.b = r.b[1:]
		friend := r.bytes()
		seq := r.uvarint()
		var o op
		switch typ {
		case opAppendOut:
			sent := r.time()
			o = appendOut{Friend: friend, Seq: seq, Sent: sent, Text: r.bytes()}
		case opMarkDelivered:
			o = markDelivered{Friend: friend, Seq: seq}
		case opAppendIn:
			sent := r.time()
			at := r.time()
			o = appendIn{Friend: friend, Seq: seq, Sent: sent, At: at, Text: r.bytes()}
		case opReserve:
			o = reserve{Friend: friend, Seq: seq}
		default:
			return nil, fmt.Errorf("unknown op type %d", typ)
		}
		if r.err == nil && (friend == "" || seq == 0) {
			r.err = errors.New("op without a friend or a sequence number")
		}
		ops = append(ops, o)
	}
	if r.err != nil {
		return nil, r.err
	}
	if len(ops) == 0 {
		return nil, errors.New("empty record")
	}
	return ops, nil
}

// readSegment returns the ops in a segment, in order. A record cut short,
// failing its checksum or with an all-zero header ends the segment: in the
// last segment that is a write a crash interrupted, never acknowledged
// (torn is true); in an earlier one, where every record was synced before
// the next segment began, it is damage.
func readSegment(r io.Reader) (ops []op, torn bool, err error) {
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(segmentMagic))
	if _, err := io.ReadFull(br, magic); err != nil {
		// Created and not yet written (a crash right after creating it).
		return nil, true, nil
	}
	if string(magic) != segmentMagic {
		return nil, false, errors.New("not a p2pchat log segment")
	}
	var head [8]byte
	var payload []byte
	for {
		if _, err := io.ReadFull(br, head[:]); err != nil {
			return ops, err != io.EOF, nil
		}
		n := binary.LittleEndian.Uint32(head[:])
		if n > maxRecord || n == 0 {
			// Past the end of what was written: a torn append leaves
			// zeros on some filesystems.
			return ops, true, nil
		}
		payload = slices.Grow(payload[:0], int(n))[:n]
		if _, err := io.ReadFull(br, payload); err != nil {
			return ops, true, nil
		}
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(head[4:]) {
			return ops, true, nil
		}
		got, err := decodeOps(payload)
		if err != nil {
			// The checksum matched: this is not a torn write.
			return nil, false, fmt.Errorf("record with a valid checksum: %w", err)
		}
		ops = append(ops, got...)
	}
}

// segmentPaths returns the log segments of the database at path, in order.
func segmentPaths(path string) []string {
	matches, _ := filepath.Glob(path + ".wal.*")
	type seg struct {
		n    int
		path string
	}
	var segs []seg
	for _, m := range matches {
		n, err := strconv.Atoi(strings.TrimPrefix(m, path+".wal."))
		if err != nil || n < 0 || n > math.MaxInt32 {
			continue
		}
		segs = append(segs, seg{n, m})
	}
	slices.SortFunc(segs, func(a, b seg) int { return a.n - b.n })
	out := make([]string, len(segs))
	for i, s := range segs {
		out[i] = s.path
	}
	return out
}
