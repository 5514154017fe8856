package network

import (
	"time"

	"p2pchat/network/internal/store"
)

// What one friend may cost on disk: the bytes of text received from them
// in a rolling window. Past it their connections are paused: nothing more
// is read or acknowledged, so they keep their messages, until the window
// has room again. A burst (BenchmarkThroughput's 100,000 messages of 250
// characters are 25 MB) is far below it; only sustained abuse meets it.
const (
	DefaultReceiveLimit  = 1 << 30 // bytes
	DefaultReceiveWindow = 24 * time.Hour
)

// budgetPeriods is how many periods the window is counted in: what was
// received in a period leaves the window all at once, at the period's
// start plus the window.
const budgetPeriods = 96

// budget counts what one friend sent within the window, per period, as
// the store records it (store.DB.Usage), so that a restart does not reset
// it. Its owner, the inbox, serialises the calls.
type budget struct {
	limit   int64
	window  time.Duration
	periods []store.Period // oldest first; loaded from the store on first use
	loaded  bool
	warned  bool // ReceivingPaused was emitted for the present pause
}

func newBudget(limit int64, window time.Duration) *budget {
	return &budget{limit: limit, window: window}
}

// period is the start of the period that now falls in.
func (b *budget) period(now time.Time) time.Time {
	return now.Truncate(b.window / budgetPeriods)
}

// load reads what friend sent within the window from db, once.
func (b *budget) load(db *store.DB, friend string, now time.Time) error {
	if b.loaded {
		return nil
	}
	ps, err := db.Usage(friend, now.Add(-b.window))
	if err != nil {
		return err
	}
	b.periods, b.loaded = ps, true
	return nil
}

// used is what was received within the window at now.
func (b *budget) used(now time.Time) int64 {
	i := 0
	for i < len(b.periods) && !now.Before(b.periods[i].Start.Add(b.window)) {
		i++
	}
	b.periods = b.periods[i:]
	var sum int64
	for _, p := range b.periods {
		sum += p.Bytes
	}
	return sum
}

// fits reports whether a message of size bytes fits at now, after pending
// bytes taken before it and not yet added. A message larger than the whole
// limit fits an empty window, so that nothing waits for ever.
func (b *budget) fits(now time.Time, pending, size int64) bool {
	used := b.used(now) + pending
	return used+size <= b.limit || used == 0
}

// roomAt is when need more bytes fit, counting only what leaves the
// window from now on.
func (b *budget) roomAt(now time.Time, need int64) time.Time {
	used := b.used(now)
	for _, p := range b.periods {
		used -= p.Bytes
		if used+need <= b.limit || used == 0 {
			return p.Start.Add(b.window)
		}
	}
	return now
}

// add counts bytes received at now.
func (b *budget) add(now time.Time, bytes int64) {
	start := b.period(now)
	if n := len(b.periods); n > 0 && b.periods[n-1].Start.Equal(start) {
		b.periods[n-1].Bytes += bytes
	} else {
		b.periods = append(b.periods, store.Period{Start: start, Bytes: bytes})
	}
	if b.used(now) <= b.limit*3/4 {
		b.warned = false // well clear of the limit: a new pause is news
	}
}
