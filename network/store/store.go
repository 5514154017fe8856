// Package store is p2pchat's durable record of messages, in one bbolt
// database in the data directory: the queue of messages to each friend
// until the friend acknowledges them, and the history of what was sent and
// received, which also tells which messages from a friend were already
// received.
//
// It knows nothing of connections. Writes from every goroutine go through
// one writer that commits whatever has accumulated in a single transaction
// (group commit), so durability costs one disk sync per batch, not one per
// message. A write is durable when its callback runs.
package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Buckets. Each holds one sub-bucket per friend, keyed by sequence number
// (uint64, big-endian, so keys sort in sending order).
var (
	bucketOut = []byte("out") // every message sent
	bucketIn  = []byte("in")  // every message received
)

// bucketDelivered maps each friend to the highest sequence number they
// acknowledged. Acknowledgements come in order, so every message at or
// below it was delivered and every one above it waits: the queue is the
// tail of the friend's out bucket.
var bucketDelivered = []byte("delivered")

// appendFill is the fill percent of buckets whose keys only ever grow:
// pages are filled, not split in half.
const appendFill = 1.0

// maxBatch bounds the writes committed in one transaction.
const maxBatch = 4096

// ErrLocked means another process has the database open.
var ErrLocked = errors.New("the database is in use by another p2pchat")

// Record is one message in the history.
type Record struct {
	Friend    string
	Outgoing  bool      // sent by us, rather than received
	Seq       uint64    // the sender's sequence number for this pair
	Text      string    //
	Sent      time.Time // the sender's clock when it was written
	At        time.Time // received: when we recorded it
	Delivered bool      // sent: the friend acknowledged it
}

// Op is one change: AppendOut, MarkDelivered or AppendIn.
type Op interface{ apply(tx *bolt.Tx) error }

// AppendOut records a message to send, queued until delivered.
type AppendOut struct {
	Friend string
	Seq    uint64
	Text   string
	Sent   time.Time
}

// MarkDelivered records the friend's acknowledgement of every message up
// to Seq.
type MarkDelivered struct {
	Friend string
	Seq    uint64
}

// AppendIn records a message received.
type AppendIn struct {
	Friend string
	Seq    uint64
	Text   string
	Sent   time.Time
	At     time.Time
}

// DB is the open database.
type DB struct {
	path   string
	bolt   *bolt.DB
	shown  *shownLog
	writes chan write
	wg     sync.WaitGroup
	once   sync.Once

	commits atomic.Int64 // transactions committed by the writer
}

type write struct {
	ops  []Op
	done func(error)
	lazy bool // may wait for company; see SubmitLazy
}

// lazyDelay is the longest a lazy write waits for a write that needs a
// commit now.
const lazyDelay = 200 * time.Millisecond

// Open opens or creates the database at path. It fails with ErrLocked if
// another process has it open, and with a descriptive error if the file is
// not a usable database: it never starts afresh over a damaged file.
func Open(path string) (*DB, error) {
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 200 * time.Millisecond})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("%s is corrupt or unreadable: %w", path, err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketOut, bucketIn, bucketDelivered} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		err = b.View(checkSafely)
	}
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("%s is corrupt or unreadable: %w", path, err)
	}
	os.Chmod(path, 0o600)
	db := &DB{path: path, bolt: b, writes: make(chan write, 1024)}
	db.shown, err = openShown(path+".shown", db.lastIn)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("cannot open %s.shown: %w", path, err)
	}
	db.wg.Add(1)
	go db.run()
	return db, nil
}

// checkSafely runs check, turning a panic of bbolt's on a damaged page into
// an error.
func checkSafely(tx *bolt.Tx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("damaged: %v", r)
		}
	}()
	return check(tx)
}

// check decodes every record, so that a damaged database is refused at
// start rather than found out later.
func check(tx *bolt.Tx) error {
	err := tx.Bucket(bucketDelivered).ForEach(func(k, v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%s/%s: malformed", bucketDelivered, k)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, name := range [][]byte{bucketOut, bucketIn} {
		err := tx.Bucket(name).ForEachBucket(func(friend []byte) error {
			return tx.Bucket(name).Bucket(friend).ForEach(func(k, v []byte) error {
				if _, err := decode(k, v); err != nil {
					return fmt.Errorf("%s/%s: %w", name, friend, err)
				}
				return nil
			})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// Path is the database file.
func (db *DB) Path() string { return db.path }

// Close waits for pending writes and closes the database.
func (db *DB) Close() error {
	var err error
	db.once.Do(func() {
		close(db.writes)
		db.wg.Wait()
		err = errors.Join(db.bolt.Close(), db.shown.close())
	})
	return err
}

// Submit commits ops in a coming transaction and then calls done, from the
// writer's goroutine: done must not block. Submit itself blocks only when
// the writer is far behind.
func (db *DB) Submit(ops []Op, done func(error)) {
	db.writes <- write{ops: ops, done: done}
}

// SubmitLazy commits ops with the next write that needs a commit, or
// within lazyDelay: for records whose loss in a crash costs only work
// already safe to repeat (a delivered mark: the friend recognises a resent
// message). It keeps such records off the path of the next message.
func (db *DB) SubmitLazy(ops []Op) {
	db.writes <- write{ops: ops, lazy: true}
}

// Apply commits ops and waits until they are durable.
func (db *DB) Apply(ops ...Op) error {
	ch := make(chan error, 1)
	db.Submit(ops, func(err error) { ch <- err })
	return <-ch
}

// run is the writer: one transaction, one sync, for everything waiting.
func (db *DB) run() {
	defer db.wg.Done()
	for w := range db.writes {
		batch := []write{w}
		n := len(w.ops)
		urgent := !w.lazy
	drain:
		for n < maxBatch {
			select {
			case w, ok := <-db.writes:
				if !ok {
					break drain
				}
				batch = append(batch, w)
				n += len(w.ops)
				urgent = urgent || !w.lazy
			default:
				break drain
			}
		}
		if !urgent {
			batch = db.awaitCompany(batch)
		}
		err := db.bolt.Update(func(tx *bolt.Tx) error {
			for _, w := range batch {
				for _, op := range w.ops {
					if err := op.apply(tx); err != nil {
						return err
					}
				}
			}
			return nil
		})
		if err != nil {
			err = fmt.Errorf("cannot write to %s: %w", db.path, err)
		}
		db.commits.Add(1)
		for _, w := range batch {
			if w.done != nil {
				w.done(err)
			}
		}
	}
}

// awaitCompany adds to a batch of lazy writes whatever comes within
// lazyDelay, until a write that needs a commit now arrives.
func (db *DB) awaitCompany(batch []write) []write {
	t := time.NewTimer(lazyDelay)
	defer t.Stop()
	for {
		select {
		case w, ok := <-db.writes:
			if !ok {
				return batch
			}
			batch = append(batch, w)
			if !w.lazy || len(batch) >= maxBatch {
				return batch
			}
		case <-t.C:
			return batch
		}
	}
}

func friendBucket(tx *bolt.Tx, top []byte, friend string) (*bolt.Bucket, error) {
	b, err := tx.Bucket(top).CreateBucketIfNotExists([]byte(friend))
	if err == nil {
		b.FillPercent = appendFill
	}
	return b, err
}

func (op AppendOut) apply(tx *bolt.Tx) error {
	b, err := friendBucket(tx, bucketOut, op.Friend)
	if err != nil {
		return err
	}
	return b.Put(key(op.Seq), encode(Record{Text: op.Text, Sent: op.Sent}))
}

func (op MarkDelivered) apply(tx *bolt.Tx) error {
	b := tx.Bucket(bucketDelivered)
	if deliveredUpTo(b, op.Friend) >= op.Seq {
		return nil
	}
	return b.Put([]byte(op.Friend), key(op.Seq))
}

func deliveredUpTo(b *bolt.Bucket, friend string) uint64 {
	v := b.Get([]byte(friend))
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func (op AppendIn) apply(tx *bolt.Tx) error {
	b, err := friendBucket(tx, bucketIn, op.Friend)
	if err != nil {
		return err
	}
	return b.Put(key(op.Seq), encode(Record{Text: op.Text, Sent: op.Sent, At: op.At}))
}

// Queue returns the messages to friend not yet acknowledged, oldest first.
func (db *DB) Queue(friend string) ([]Record, error) {
	var out []Record
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOut).Bucket([]byte(friend))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(key(deliveredUpTo(tx.Bucket(bucketDelivered), friend) + 1)); k != nil; k, v = c.Next() {
			r, err := decode(k, v)
			if err != nil {
				return err
			}
			r.Friend, r.Outgoing = friend, true
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// LastSeq returns the highest sequence number sent to friend (out) and
// received from friend (in); zero for none.
func (db *DB) LastSeq(friend string) (out, in uint64, err error) {
	err = db.bolt.View(func(tx *bolt.Tx) error {
		last := func(top []byte) uint64 {
			b := tx.Bucket(top).Bucket([]byte(friend))
			if b == nil {
				return 0
			}
			k, _ := b.Cursor().Last()
			if len(k) != 8 {
				return 0
			}
			return binary.BigEndian.Uint64(k)
		}
		out, in = last(bucketOut), last(bucketIn)
		return nil
	})
	return out, in, err
}

// MarkShown records that the messages received from friend up to seq have
// been shown. Call it right after showing them.
func (db *DB) MarkShown(friend string, seq uint64) error { return db.shown.mark(friend, seq) }

// Unshown returns the messages received from friend, recorded but not
// marked shown, oldest first: the ones a crash caught between the two.
func (db *DB) Unshown(friend string) ([]Record, error) {
	after := db.shown.shown(friend)
	var out []Record
	err := db.bolt.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIn).Bucket([]byte(friend))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(key(after + 1)); k != nil; k, v = c.Next() {
			r, err := decode(k, v)
			if err != nil {
				return err
			}
			r.Friend = friend
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// lastIn returns the highest sequence number received from each friend.
func (db *DB) lastIn() (map[string]uint64, error) {
	last := make(map[string]uint64)
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIn).ForEachBucket(func(friend []byte) error {
			if k, _ := tx.Bucket(bucketIn).Bucket(friend).Cursor().Last(); len(k) == 8 {
				last[string(friend)] = binary.BigEndian.Uint64(k)
			}
			return nil
		})
	})
	return last, err
}

// History returns the last n messages exchanged with friend, both ways,
// oldest first.
func (db *DB) History(friend string, n int) ([]Record, error) {
	var all []Record
	err := db.bolt.View(func(tx *bolt.Tx) error {
		for _, top := range [][]byte{bucketOut, bucketIn} {
			b := tx.Bucket(top).Bucket([]byte(friend))
			if b == nil {
				continue
			}
			delivered := deliveredUpTo(tx.Bucket(bucketDelivered), friend)
			c := b.Cursor()
			var got []Record
			for k, v := c.Last(); k != nil && len(got) < n; k, v = c.Prev() {
				r, err := decode(k, v)
				if err != nil {
					return err
				}
				r.Friend, r.Outgoing = friend, string(top) == string(bucketOut)
				r.Delivered = r.Outgoing && r.Seq <= delivered
				got = append(got, r)
			}
			slices.Reverse(got) // oldest first, so ties in time keep sequence order
			all = append(all, got...)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Order by when each message entered this database: sent ones by their
	// time of writing, received ones by their time of arrival.
	when := func(r Record) time.Time {
		if r.Outgoing {
			return r.Sent
		}
		return r.At
	}
	slices.SortStableFunc(all, func(a, b Record) int { return when(a).Compare(when(b)) })
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return all, nil
}

func key(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// Record value layout: sent, at (int64 Unix milliseconds, 0 for none), then
// the text.
func encode(r Record) []byte {
	b := make([]byte, 0, 16+len(r.Text))
	for _, t := range []time.Time{r.Sent, r.At} {
		var ms int64
		if !t.IsZero() {
			ms = t.UnixMilli()
		}
		b = binary.BigEndian.AppendUint64(b, uint64(ms))
	}
	return append(b, r.Text...)
}

func decode(k, v []byte) (Record, error) {
	if len(k) != 8 || len(v) < 16 {
		return Record{}, fmt.Errorf("malformed record (key %d bytes, value %d bytes)", len(k), len(v))
	}
	t := func(i int) time.Time {
		ms := int64(binary.BigEndian.Uint64(v[8*i:]))
		if ms == 0 {
			return time.Time{}
		}
		return time.UnixMilli(ms)
	}
	return Record{Seq: binary.BigEndian.Uint64(k), Sent: t(0), At: t(1), Text: string(v[16:])}, nil
}
