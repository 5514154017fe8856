package network

import (
	"sync"
	"time"
)

// Presence: whether a friend is online, and when they were last seen.
const (
	// onlineWindow is how long a friend counts as online after their last
	// connection with us closed, or after the last frame from them.
	onlineWindow = 5 * time.Minute
	// seenWriteEvery bounds how often a friend's last-seen time is written
	// while frames keep coming; a closing connection writes it at once.
	seenWriteEvery = time.Minute
)

// presence follows, from the events the node emits, which friends are
// online: a connection with them is open, either way, or one was used in
// the last onlineWindow. It records when each was last seen, lazily: at
// most once per seenWriteEvery per friend while frames come, when a
// connection closes, and when the node stops.
type presence struct {
	write func(friend string, at time.Time) // records at, without waiting for the disk
	now   func() time.Time

	mu      sync.Mutex
	friends map[string]*seen
}

// seen is what presence knows of one friend.
type seen struct {
	open    int       // connections with them open, either way
	heard   time.Time // the last connection or frame from them in this run
	stored  time.Time // last seen, as read at start or written since
	written time.Time // when stored was last written
}

// newPresence starts from the last-seen times recorded before.
func newPresence(last map[string]time.Time, write func(string, time.Time)) *presence {
	p := &presence{write: write, now: time.Now, friends: make(map[string]*seen)}
	for name, at := range last {
		p.friends[name] = &seen{stored: at}
	}
	return p
}

func (p *presence) friendLocked(name string) *seen {
	s := p.friends[name]
	if s == nil {
		s = &seen{}
		p.friends[name] = s
	}
	return s
}

// saw takes an event the node emits: connections up and down, messages
// and acknowledgements are all something from the friend.
func (p *presence) saw(ev Event) {
	switch e := ev.(type) {
	case ConnUp:
		p.heard(e.Friend, +1)
	case ConnDown:
		p.heard(e.Friend, -1)
	case MessageReceived:
		if !e.replayed {
			p.heard(e.From, 0)
		}
	case MessageDelivered:
		p.heard(e.To, 0)
	}
}

// heard notes something from the friend now, and open connections
// opened (+1) or closed (-1).
func (p *presence) heard(name string, open int) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.friendLocked(name)
	s.open = max(0, s.open+open)
	s.heard = now
	if open < 0 || now.Sub(s.written) >= seenWriteEvery {
		p.storeLocked(name, s, now)
	}
}

func (p *presence) storeLocked(name string, s *seen, at time.Time) {
	s.stored, s.written = at, p.now()
	p.write(name, at)
}

// flush records, as the node stops, when each friend was last seen: now for
// those with a connection still open.
func (p *presence) flush() {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, s := range p.friends {
		switch {
		case s.open > 0:
			p.storeLocked(name, s, now)
		case s.heard.After(s.stored):
			p.storeLocked(name, s, s.heard)
		}
	}
}

// status says whether the friend is online, and when they were last seen:
// now while a connection is open, zero if never.
func (p *presence) status(name string) (online bool, last time.Time) {
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	s := p.friends[name]
	if s == nil {
		return false, time.Time{}
	}
	if s.open > 0 {
		return true, now
	}
	last = s.stored
	if s.heard.After(last) {
		last = s.heard
	}
	return !s.heard.IsZero() && now.Sub(s.heard) < onlineWindow, last
}
