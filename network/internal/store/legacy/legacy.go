// Package legacy reads the message store of p2pchat 0.1, so that it can be
// moved into the SQLite store once, at the first start of a newer release.
// It only reads: it never writes to the old files, and nothing else in the
// program uses it.
//
// The old store was a bbolt database (PATH), a write-ahead log of segments
// in front of it (PATH.wal.N, see log.go), and a file of shown marks
// (PATH.shown). Read merges all three as the old release's Open did: the
// log's records are applied over bbolt's, in order.
package legacy

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Message is one message of the old store.
type Message struct {
	Friend    string
	Outgoing  bool   // sent by us
	Seq       uint64 // the old per-pair sequence number
	Text      string
	Sent      time.Time // the sender's clock
	At        time.Time // received: when it was recorded
	Delivered bool      // sent: the friend acknowledged it
	Shown     bool      // received: it was shown on the screen
}

// Files returns the files of the old store at path that exist: the bbolt
// database, its log segments and its shown marks.
func Files(path string) []string {
	var out []string
	for _, p := range append([]string{path, path + ".shown", path + ".shown.tmp"}, segmentPaths(path)...) {
		if _, err := os.Lstat(p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// Read returns every message of the old store at path, per friend in the
// order the old release showed them in its history: sent ones by their
// time of writing, received ones by their time of arrival, ties in
// sequence order. A damaged file is an error naming it; Read never
// crashes on one.
func Read(path string) (msgs []Message, err error) {
	// bbolt maps the file: a file cut short faults on access, which this
	// turns into a panic, recovered below, instead of a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			msgs, err = nil, fmt.Errorf("%s is damaged: %v", path, r)
		}
	}()
	st, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: 200 * time.Millisecond})
	if err != nil {
		return nil, fmt.Errorf("%s is damaged or unreadable: %w", path, err)
	}
	defer b.Close()
	s := newState()
	if err := b.View(s.load); err != nil {
		return nil, fmt.Errorf("%s is damaged: %w", path, err)
	}
	for i, seg := range segmentPaths(path) {
		f, err := os.Open(seg)
		if err != nil {
			return nil, err
		}
		ops, torn, err := readSegment(f)
		f.Close()
		if err == nil && torn && i < len(segmentPaths(path))-1 {
			err = errors.New("damaged record")
		}
		if err != nil {
			return nil, fmt.Errorf("%s is damaged: %w", seg, err)
		}
		for _, op := range ops {
			s.apply(op)
		}
	}
	shown, err := readShown(path + ".shown")
	if err != nil {
		return nil, err
	}
	return s.messages(shown), nil
}

// state is the old store's content, merged.
type state struct {
	out, in   map[string]map[uint64]Message
	delivered map[string]uint64
}

func newState() *state {
	return &state{out: map[string]map[uint64]Message{}, in: map[string]map[uint64]Message{}, delivered: map[string]uint64{}}
}

func (s *state) put(m Message) {
	top := s.in
	if m.Outgoing {
		top = s.out
	}
	if top[m.Friend] == nil {
		top[m.Friend] = map[uint64]Message{}
	}
	top[m.Friend][m.Seq] = m
}

func (s *state) load(tx *bolt.Tx) error {
	for _, dir := range []struct {
		name     string
		outgoing bool
	}{{"out", true}, {"in", false}} {
		top := tx.Bucket([]byte(dir.name))
		if top == nil {
			continue
		}
		err := top.ForEachBucket(func(friend []byte) error {
			return top.Bucket(friend).ForEach(func(k, v []byte) error {
				if len(k) != 8 || len(v) < 16 {
					return fmt.Errorf("%s/%s: malformed record", dir.name, friend)
				}
				s.put(Message{
					Friend:   string(friend),
					Outgoing: dir.outgoing,
					Seq:      binary.BigEndian.Uint64(k),
					Sent:     unixMilli(int64(binary.BigEndian.Uint64(v))),
					At:       unixMilli(int64(binary.BigEndian.Uint64(v[8:]))),
					Text:     string(v[16:]),
				})
				return nil
			})
		})
		if err != nil {
			return err
		}
	}
	if d := tx.Bucket([]byte("delivered")); d != nil {
		return d.ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("delivered/%s: malformed", k)
			}
			s.delivered[string(k)] = max(s.delivered[string(k)], binary.BigEndian.Uint64(v))
			return nil
		})
	}
	return nil
}

func (s *state) apply(op op) {
	switch op := op.(type) {
	case appendOut:
		s.put(Message{Friend: op.Friend, Outgoing: true, Seq: op.Seq, Text: op.Text, Sent: op.Sent})
	case appendIn:
		s.put(Message{Friend: op.Friend, Seq: op.Seq, Text: op.Text, Sent: op.Sent, At: op.At})
	case markDelivered:
		s.delivered[op.Friend] = max(s.delivered[op.Friend], op.Seq)
	}
}

// messages returns everything, friends in name order, each friend's
// messages in history order. A friend with no shown mark (no file, or a
// damaged or emptied one) has everything received counted as shown, as the
// old release did without a file: showing a whole history again as new is
// the worse mistake.
func (s *state) messages(shown map[string]uint64) []Message {
	friends := map[string]bool{}
	for f := range s.out {
		friends[f] = true
	}
	for f := range s.in {
		friends[f] = true
	}
	names := make([]string, 0, len(friends))
	for f := range friends {
		names = append(names, f)
	}
	sort.Strings(names)
	var all []Message
	for _, f := range names {
		var ms []Message
		for _, m := range s.out[f] {
			m.Delivered = m.Seq <= s.delivered[f]
			ms = append(ms, m)
		}
		for _, m := range s.in[f] {
			last, ok := shown[f]
			m.Shown = !ok || m.Seq <= last
			ms = append(ms, m)
		}
		slices.SortStableFunc(ms, func(a, b Message) int {
			if c := when(a).Compare(when(b)); c != 0 {
				return c
			}
			if a.Outgoing != b.Outgoing {
				return 0
			}
			return cmp.Compare(a.Seq, b.Seq)
		})
		all = append(all, ms...)
	}
	return all
}

func when(m Message) time.Time {
	if m.Outgoing {
		return m.Sent
	}
	return m.At
}

// readShown reads the shown marks: lines "NAME SEQ". A torn last line is
// skipped, as the old release did. No file means no marks.
func readShown(path string) (map[string]uint64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	last := map[string]uint64{}
	for _, line := range strings.Split(string(data), "\n") {
		name, num, ok := strings.Cut(line, " ")
		seq, err := strconv.ParseUint(num, 10, 64)
		if !ok || err != nil {
			continue
		}
		last[name] = max(last[name], seq)
	}
	return last, nil
}

func unixMilli(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms)
}
