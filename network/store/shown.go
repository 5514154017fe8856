package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"sync"
)

// shownLog records, per friend, the last received message that was shown
// on the screen. Showing a message and recording that it was shown cannot
// be one atomic step; this makes the gap two system calls wide. Each mark
// is one append with no sync: it survives the process being killed (the
// page cache keeps it), and after a power failure, when the screen is gone
// anyway, a few messages may be shown again. Lines are "NAME SEQ"; the
// file is compacted when opened.
type shownLog struct {
	mu   sync.Mutex
	f    *os.File
	last map[string]uint64
}

// openShown reads the log at path. When there is none, every message
// received so far counts as shown (initial gives the last sequence numbers).
func openShown(path string, initial func() (map[string]uint64, error)) (*shownLog, error) {
	last := make(map[string]uint64)
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if last, err = initial(); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, err
	default:
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			name, num, ok := bytes.Cut(sc.Bytes(), []byte(" "))
			seq, err := strconv.ParseUint(string(num), 10, 64)
			if !ok || err != nil {
				continue // a torn last line: the mark before it stands (a number cut short is a smaller mark, still true)
			}
			last[string(name)] = max(last[string(name)], seq)
		}
	}
	// Compact: one line per friend.
	names := make([]string, 0, len(last))
	for n := range last {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&b, "%s %d\n", n, last[n])
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o600); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	return &shownLog{f: f, last: last}, nil
}

func (s *shownLog) shown(friend string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last[friend]
}

func (s *shownLog) mark(friend string, seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq <= s.last[friend] {
		return nil
	}
	s.last[friend] = seq
	_, err := s.f.Write([]byte(friend + " " + strconv.FormatUint(seq, 10) + "\n"))
	return err
}

func (s *shownLog) close() error { return s.f.Close() }
