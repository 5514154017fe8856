package trust

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"p2pchat/network/wire"
)

// KnownPeers is the trust-on-first-use record: for each friend whose ID the
// table does not give, the first ID seen, or the one the person accepted
// after forgetting it. It is kept in a human-readable file in the data
// directory, one friend a line: "NAME ID SINCE", or "NAME - SINCE" for a
// friend whose identity was forgotten and whose next one waits to be
// accepted.
type KnownPeers struct {
	path string // "" keeps the record in memory only

	mu  sync.Mutex
	ids map[string]knownPeer
}

type knownPeer struct {
	id    ID // zero: forgotten
	since time.Time
}

// LoadKnownPeers reads the record at path; a missing file is an empty
// record. An unreadable or malformed file is an error naming the line.
func LoadKnownPeers(path string) (*KnownPeers, error) {
	k := &KnownPeers{path: path, ids: make(map[string]knownPeer)}
	if path == "" {
		return k, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return k, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		cols := strings.Fields(line)
		if len(cols) == 0 {
			continue
		}
		if len(cols) < 2 {
			return nil, fmt.Errorf("%s:%d: want NAME ID [FIRST-SEEN]", path, n)
		}
		if err := wire.CheckName(cols[0]); err != nil {
			return nil, fmt.Errorf("%s:%d: %v", path, n, err)
		}
		var id ID // "-": forgotten
		if cols[1] != "-" {
			if id, err = ParseID(cols[1]); err != nil {
				return nil, fmt.Errorf("%s:%d: %v", path, n, err)
			}
		}
		var since time.Time
		if len(cols) > 2 {
			since, _ = time.Parse(time.RFC3339, cols[2])
		}
		k.ids[cols[0]] = knownPeer{id: id, since: since}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// Lookup returns the ID pinned for name, if any.
func (k *KnownPeers) Lookup(name string) (ID, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.ids[name]
	if p.id.IsZero() {
		return ID{}, false
	}
	return p.id, ok
}

// forgotten reports whether name's identity was forgotten, and no new one
// accepted.
func (k *KnownPeers) forgotten(name string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	p, ok := k.ids[name]
	return ok && p.id.IsZero()
}

// pin records id for name unless name already has an ID. It reports the ID
// name is pinned to afterwards, and whether this call pinned it.
func (k *KnownPeers) pin(name string, id ID) (ID, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if p, ok := k.ids[name]; ok && !p.id.IsZero() {
		return p.id, false, nil
	}
	k.ids[name] = knownPeer{id: id, since: time.Now().UTC().Truncate(time.Second)}
	if err := k.saveLocked(); err != nil {
		delete(k.ids, name)
		return ID{}, false, err
	}
	return id, true, nil
}

// forget marks name's identity forgotten.
func (k *KnownPeers) forget(name string) error {
	return k.set(name, ID{})
}

// accept pins id for name, whatever was there.
func (k *KnownPeers) accept(name string, id ID) error {
	return k.set(name, id)
}

func (k *KnownPeers) set(name string, id ID) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	old, had := k.ids[name]
	k.ids[name] = knownPeer{id: id, since: time.Now().UTC().Truncate(time.Second)}
	if err := k.saveLocked(); err != nil {
		if had {
			k.ids[name] = old
		} else {
			delete(k.ids, name)
		}
		return err
	}
	return nil
}

// saveLocked rewrites the file; k.mu must be held.
func (k *KnownPeers) saveLocked() error {
	if k.path == "" {
		return nil
	}
	names := make([]string, 0, len(k.ids))
	for n := range k.ids {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	b.WriteString("# p2pchat: friends' identities, pinned the first time each was seen.\n")
	b.WriteString("# /forget NAME marks a line \"-\": the next identity waits for /accept NAME ID.\n")
	b.WriteString("# NAME ID SINCE\n")
	for _, n := range names {
		p := k.ids[n]
		id := "-"
		if !p.id.IsZero() {
			id = p.id.String()
		}
		fmt.Fprintf(&b, "%s %s %s\n", n, id, p.since.Format(time.RFC3339))
	}
	if err := writeFileAtomic(k.path, []byte(b.String())); err != nil {
		return fmt.Errorf("cannot save %s: %w", k.path, err)
	}
	return nil
}
