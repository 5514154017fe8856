// Package store is p2pchat's durable record of messages in the data
// directory: the queue of messages to each friend until the friend
// acknowledges them, and the history of what was sent and received, which
// also tells which messages from a friend were already received.
//
// It knows nothing of connections. A write is first appended to a log
// (Append) and made durable by one write and one fdatasync (Sync), shared by
// every write waiting at that moment (group commit). In the background a
// checkpointer copies the log into a bbolt database in large transactions
// and discards it; reads see both. A crash loses nothing a Sync returned
// for: the next Open replays the log into bbolt.
package store

import (
	"cmp"
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

// bucketReserved maps each friend to the highest sequence number reserved
// for messages to them (see Reserve).
var bucketReserved = []byte("reserved")

// appendFill is the fill percent of buckets whose keys only ever grow:
// pages are filled, not split in half.
const appendFill = 1.0

// The checkpointer starts once appends pause for checkpointQuiet, so that
// its work stays out of the way of a burst of messages, or at once when the
// log holds checkpointOps ops. Appends wait while the log holds maxLogOps
// and a checkpoint is running.
const (
	checkpointQuiet = 100 * time.Millisecond
	checkpointOps   = 1 << 16
	maxLogOps       = 2 * checkpointOps
)

// initialMmap is the address space bbolt maps at first: remapping as the
// file grows makes it copy every node it holds out of the old mapping. It
// is address space, not memory.
const initialMmap = 256 << 20

// lazyDelay is the longest a write appended with AppendLazy waits for a
// sync.
const lazyDelay = 200 * time.Millisecond

// ErrLocked means another process has the database open.
var ErrLocked = errors.New("the database is in use by another p2pchat")

// ErrClosed means the database was closed.
var ErrClosed = errors.New("the database is closed")

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

// Op is one change: AppendOut, MarkDelivered, AppendIn or Reserve.
type Op interface {
	apply(tx *bolt.Tx) error
	encode(b []byte) []byte
}

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

// Reserve records that sequence numbers up to Seq may be in use for
// messages to Friend: a sender that puts a message on the wire before its
// AppendOut is durable reserves its number first, so that a crash in
// between cannot lead to the number being given to another message, which
// the friend would take for a duplicate. It replaces the friend's earlier
// reservation: one that lowers it to the last number used releases the
// rest, on a clean shutdown.
type Reserve struct {
	Friend string
	Seq    uint64
}

// Ticket identifies an append; Sync(t) waits until it is durable.
type Ticket uint64

// DB is the open database.
type DB struct {
	path  string
	bolt  *bolt.DB
	shown *shownLog

	mu        sync.Mutex
	cond      *sync.Cond // broadcast when a sync or a checkpoint step ends
	seg       *os.File   // the log segment appended to
	segNum    int        // its number
	buf       []byte     // records appended, not yet written
	spare     []byte     // the other buffer, reused
	bufOps    int        // how many of the ops at the end of live are in buf
	appended  uint64     // records appended so far: the last Ticket
	durable   uint64     // records synced so far
	syncing   bool       // a Sync is writing and syncing, mu released
	err       error      // the log or bbolt failed: every write fails now
	closed    bool
	live      []Op // in the log, not yet in bbolt, oldest first
	applying  []Op // being copied into bbolt by the checkpointer
	ckptDue   *time.Timer
	lazyDue   *time.Timer
	lazyArmed bool

	kick chan struct{} // wakes the checkpointer
	quit chan struct{}
	wg   sync.WaitGroup

	syncs       atomic.Int64 // log syncs
	checkpoints atomic.Int64 // checkpoints done
}

// Open opens or creates the database at path, replaying its log. It fails
// with ErrLocked if another process has it open, and with a descriptive
// error if the file is not a usable database: it never starts afresh over a
// damaged file.
func Open(path string) (*DB, error) {
	b, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 200 * time.Millisecond, InitialMmapSize: initialMmap})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, fmt.Errorf("%s is corrupt or unreadable: %w", path, err)
	}
	nums, err := segments(path)
	if err != nil {
		b.Close()
		return nil, err
	}
	replay, err := readLog(path, nums)
	if err != nil {
		b.Close()
		return nil, err
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketOut, bucketIn, bucketDelivered, bucketReserved} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		for _, op := range replay {
			if err := op.apply(tx); err != nil {
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
	next := 1
	if len(nums) > 0 {
		next = nums[len(nums)-1] + 1
	}
	seg, err := createSegment(path, next)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("cannot create a log segment for %s: %w", path, err)
	}
	for _, n := range nums { // in bbolt now
		os.Remove(segmentPath(path, n))
	}
	db := &DB{
		path:   path,
		bolt:   b,
		seg:    seg,
		segNum: next,
		kick:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
	}
	db.cond = sync.NewCond(&db.mu)
	db.shown, err = openShown(path+".shown", db.lastIn)
	if err != nil {
		b.Close()
		seg.Close()
		return nil, fmt.Errorf("cannot open %s.shown: %w", path, err)
	}
	db.wg.Add(1)
	go db.checkpointer()
	return db, nil
}

// readLog reads the segments nums of the log of the database at path.
func readLog(path string, nums []int) ([]Op, error) {
	var all []Op
	for i, n := range nums {
		f, err := os.Open(segmentPath(path, n))
		if err != nil {
			return nil, fmt.Errorf("cannot read the log of %s: %w", path, err)
		}
		ops, torn, err := readSegment(f)
		f.Close()
		if err == nil && torn && i < len(nums)-1 {
			err = errors.New("damaged record")
		}
		if err != nil {
			return nil, fmt.Errorf("%s is corrupt or unreadable: %w", segmentPath(path, n), err)
		}
		all = append(all, ops...)
	}
	return all, nil
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
	for _, name := range [][]byte{bucketDelivered, bucketReserved} {
		err := tx.Bucket(name).ForEach(func(k, v []byte) error {
			if len(v) != 8 {
				return fmt.Errorf("%s/%s: malformed", name, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
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

// Close makes everything appended durable, copies the log into bbolt and
// closes the database.
func (db *DB) Close() error {
	db.mu.Lock()
	if db.closed {
		db.mu.Unlock()
		return nil
	}
	for db.err == nil && (db.syncing || db.durable < db.appended) {
		if db.syncing {
			db.cond.Wait()
		} else {
			db.flushLocked()
		}
	}
	db.closed = true
	for _, t := range []*time.Timer{db.ckptDue, db.lazyDue} {
		if t != nil {
			t.Stop()
		}
	}
	db.mu.Unlock()
	close(db.quit)
	db.wg.Wait()
	err := db.checkpoint()
	db.cond.Broadcast()
	return errors.Join(err, db.seg.Close(), db.bolt.Close(), db.shown.close())
}

// Append adds ops to the log, in order after everything appended before,
// and returns at once: they are durable once Sync returns for the ticket.
// Reads see them at once. Append waits only when the log is far ahead of
// the checkpointer.
func (db *DB) Append(ops ...Op) Ticket {
	db.mu.Lock()
	defer db.mu.Unlock()
	for len(db.live) >= maxLogOps && db.applying != nil && db.err == nil && !db.closed {
		db.cond.Wait()
	}
	db.buf = appendRecord(db.buf, ops)
	db.live = append(db.live, ops...)
	db.bufOps += len(ops)
	db.appended++
	switch {
	case len(db.live) >= checkpointOps:
		db.wakeCheckpointer()
	case db.closed:
	case db.ckptDue == nil:
		db.ckptDue = time.AfterFunc(checkpointQuiet, db.wakeCheckpointer)
	default:
		db.ckptDue.Reset(checkpointQuiet)
	}
	return Ticket(db.appended)
}

// AppendLazy appends ops and makes them durable within lazyDelay, with
// whatever else is synced by then: for records whose loss in a crash costs
// only work already safe to repeat (a delivered mark: the friend
// recognises a resent message). It keeps them off the next message's path.
func (db *DB) AppendLazy(ops ...Op) {
	db.Append(ops...)
	db.mu.Lock()
	defer db.mu.Unlock()
	if db.closed || db.lazyArmed {
		return
	}
	db.lazyArmed = true
	db.lazyDue = time.AfterFunc(lazyDelay, func() {
		db.mu.Lock()
		db.lazyArmed = false
		t := Ticket(db.appended)
		db.mu.Unlock()
		db.Sync(t)
	})
}

// Sync waits until the append t, and every one before it, is durable. If
// nobody is syncing, the caller writes and syncs everything appended so
// far; otherwise it waits for that sync, and the next.
func (db *DB) Sync(t Ticket) error {
	db.mu.Lock()
	defer db.mu.Unlock()
	for {
		switch {
		case db.err != nil:
			return db.err
		case uint64(t) <= db.durable:
			return nil
		case db.closed:
			return ErrClosed
		case !db.syncing:
			db.flushLocked()
		default:
			db.cond.Wait()
		}
	}
}

// Apply appends ops and waits until they are durable.
func (db *DB) Apply(ops ...Op) error { return db.Sync(db.Append(ops...)) }

// flushLocked writes and syncs everything appended, releasing mu while the
// disk works: appends made meanwhile go in the next flush.
func (db *DB) flushLocked() {
	buf, f, upTo := db.buf, db.seg, db.appended
	db.buf, db.spare = db.spare[:0], nil
	db.bufOps = 0
	db.syncing = true
	db.mu.Unlock()
	_, err := f.Write(buf)
	if err == nil {
		err = datasync(f)
	}
	db.mu.Lock()
	db.syncing = false
	if cap(buf) <= 4<<20 {
		db.spare = buf[:0]
	}
	if err != nil {
		db.err = fmt.Errorf("cannot write to %s: %w", f.Name(), err)
	} else {
		db.durable = upTo
		db.syncs.Add(1)
	}
	db.cond.Broadcast()
}

func (db *DB) wakeCheckpointer() {
	select {
	case db.kick <- struct{}{}:
	default:
	}
}

// checkpointer copies the log into bbolt when woken.
func (db *DB) checkpointer() {
	defer db.wg.Done()
	for {
		select {
		case <-db.quit:
			return
		case <-db.kick:
		}
		if err := db.checkpoint(); err != nil {
			db.mu.Lock()
			if db.err == nil {
				db.err = err
			}
			db.cond.Broadcast()
			db.mu.Unlock()
		}
	}
}

// checkpoint starts a new log segment, copies the synced ops of the old
// one into bbolt in one transaction, and deletes the old segment. Ops
// appended and not yet written stay in the log; they go to the new
// segment.
func (db *DB) checkpoint() error {
	db.mu.Lock()
	for db.syncing {
		db.cond.Wait()
	}
	n := len(db.live) - db.bufOps
	num := db.segNum + 1
	db.mu.Unlock()
	if n == 0 {
		return nil
	}
	next, err := createSegment(db.path, num)
	if err != nil {
		return fmt.Errorf("cannot create a log segment for %s: %w", db.path, err)
	}
	db.mu.Lock()
	for db.syncing {
		db.cond.Wait()
	}
	old := db.seg
	db.seg, db.segNum = next, num
	n = len(db.live) - db.bufOps
	db.applying = db.live[:n:n]
	db.live = slices.Clone(db.live[n:])
	db.cond.Broadcast()
	db.mu.Unlock()

	err = db.bolt.Update(func(tx *bolt.Tx) error {
		for _, op := range db.applying {
			if err := op.apply(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// The ops stay readable from applying, and durable in the old
		// segment, which the next Open replays.
		return fmt.Errorf("cannot write to %s: %w", db.path, err)
	}
	old.Close()
	os.Remove(old.Name())
	db.mu.Lock()
	db.applying = nil
	db.cond.Broadcast()
	db.mu.Unlock()
	db.checkpoints.Add(1)
	return nil
}

// pending returns the ops in the log and not yet in bbolt, oldest first.
// Read it before bbolt: an op checkpointed in between is then seen twice,
// never missed.
func (db *DB) pending() []Op {
	db.mu.Lock()
	defer db.mu.Unlock()
	return append(slices.Clip(db.applying), db.live...)
}

// tail is what the log adds, for one friend, to what bbolt holds.
type tail struct {
	out, in   []Record // oldest first
	delivered uint64
	reserved  uint64
	reserves  bool // reserved is set
}

func (db *DB) tail(friend string) tail {
	var t tail
	for _, op := range db.pending() {
		switch op := op.(type) {
		case AppendOut:
			if op.Friend == friend {
				t.out = append(t.out, Record{Friend: friend, Outgoing: true, Seq: op.Seq, Text: op.Text, Sent: op.Sent})
			}
		case AppendIn:
			if op.Friend == friend {
				t.in = append(t.in, Record{Friend: friend, Seq: op.Seq, Text: op.Text, Sent: op.Sent, At: op.At})
			}
		case MarkDelivered:
			if op.Friend == friend {
				t.delivered = max(t.delivered, op.Seq)
			}
		case Reserve:
			if op.Friend == friend {
				t.reserved, t.reserves = op.Seq, true
			}
		}
	}
	bySeq := func(a, b Record) int { return cmp.Compare(a.Seq, b.Seq) }
	slices.SortStableFunc(t.out, bySeq)
	slices.SortStableFunc(t.in, bySeq)
	return t
}

// after returns the records of rs with a sequence number above seq.
func after(rs []Record, seq uint64) []Record {
	i := 0
	for i < len(rs) && rs[i].Seq <= seq {
		i++
	}
	return rs[i:]
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
	return putMax(tx.Bucket(bucketDelivered), op.Friend, op.Seq)
}

func (op Reserve) apply(tx *bolt.Tx) error {
	return tx.Bucket(bucketReserved).Put([]byte(op.Friend), key(op.Seq))
}

func putMax(b *bolt.Bucket, friend string, seq uint64) error {
	if seqOf(b, friend) >= seq {
		return nil
	}
	return b.Put([]byte(friend), key(seq))
}

func seqOf(b *bolt.Bucket, friend string) uint64 {
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

// scan returns the records of friend in bucket top with a sequence number
// above seq, oldest first.
func scan(tx *bolt.Tx, top []byte, friend string, seq uint64) ([]Record, error) {
	b := tx.Bucket(top).Bucket([]byte(friend))
	if b == nil {
		return nil, nil
	}
	var out []Record
	c := b.Cursor()
	for k, v := c.Seek(key(seq + 1)); k != nil; k, v = c.Next() {
		r, err := decode(k, v)
		if err != nil {
			return nil, err
		}
		r.Friend, r.Outgoing = friend, string(top) == string(bucketOut)
		out = append(out, r)
	}
	return out, nil
}

// lastKey returns the highest sequence number of friend in bucket top.
func lastKey(tx *bolt.Tx, top []byte, friend string) uint64 {
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

// Queue returns the messages to friend not yet acknowledged, oldest first.
func (db *DB) Queue(friend string) ([]Record, error) {
	t := db.tail(friend)
	var out []Record
	err := db.bolt.View(func(tx *bolt.Tx) error {
		delivered := max(t.delivered, seqOf(tx.Bucket(bucketDelivered), friend))
		var err error
		out, err = scan(tx, bucketOut, friend, delivered)
		last := delivered
		if len(out) > 0 {
			last = out[len(out)-1].Seq
		}
		out = append(out, after(after(t.out, last), delivered)...)
		return err
	})
	return out, err
}

// LastSeq returns the highest sequence number sent to friend (out) and
// received from friend (in); zero for none.
func (db *DB) LastSeq(friend string) (out, in uint64, err error) {
	t := db.tail(friend)
	err = db.bolt.View(func(tx *bolt.Tx) error {
		out, in = lastKey(tx, bucketOut, friend), lastKey(tx, bucketIn, friend)
		return nil
	})
	if len(t.out) > 0 {
		out = max(out, t.out[len(t.out)-1].Seq)
	}
	if len(t.in) > 0 {
		in = max(in, t.in[len(t.in)-1].Seq)
	}
	return out, in, err
}

// Reserved returns the highest sequence number reserved for friend.
func (db *DB) Reserved(friend string) (uint64, error) {
	t := db.tail(friend)
	if t.reserves {
		return t.reserved, nil
	}
	var r uint64
	err := db.bolt.View(func(tx *bolt.Tx) error {
		r = seqOf(tx.Bucket(bucketReserved), friend)
		return nil
	})
	return r, err
}

// MarkShown records that the messages received from friend up to seq have
// been shown. Call it right after showing them.
func (db *DB) MarkShown(friend string, seq uint64) error { return db.shown.mark(friend, seq) }

// Unshown returns the messages received from friend, recorded but not
// marked shown, oldest first: the ones a crash caught between the two.
func (db *DB) Unshown(friend string) ([]Record, error) {
	shown := db.shown.shown(friend)
	t := db.tail(friend)
	var out []Record
	err := db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		out, err = scan(tx, bucketIn, friend, shown)
		last := shown
		if len(out) > 0 {
			last = out[len(out)-1].Seq
		}
		out = append(out, after(t.in, last)...)
		return err
	})
	return out, err
}

// lastIn returns the highest sequence number received from each friend.
func (db *DB) lastIn() (map[string]uint64, error) {
	last := make(map[string]uint64)
	for _, op := range db.pending() {
		if op, ok := op.(AppendIn); ok {
			last[op.Friend] = max(last[op.Friend], op.Seq)
		}
	}
	err := db.bolt.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketIn).ForEachBucket(func(friend []byte) error {
			f := string(friend)
			last[f] = max(last[f], lastKey(tx, bucketIn, f))
			return nil
		})
	})
	return last, err
}

// History returns the last n messages exchanged with friend, both ways,
// oldest first.
func (db *DB) History(friend string, n int) ([]Record, error) {
	t := db.tail(friend)
	var all []Record
	err := db.bolt.View(func(tx *bolt.Tx) error {
		delivered := max(t.delivered, seqOf(tx.Bucket(bucketDelivered), friend))
		for _, top := range [][]byte{bucketOut, bucketIn} {
			pend := t.in
			if string(top) == string(bucketOut) {
				pend = t.out
			}
			var got []Record // newest first
			for i := len(pend) - 1; i >= 0 && len(got) < n; i-- {
				got = append(got, pend[i])
			}
			if b := tx.Bucket(top).Bucket([]byte(friend)); b != nil {
				c := b.Cursor()
				for k, v := c.Last(); k != nil && len(got) < n; k, v = c.Prev() {
					r, err := decode(k, v)
					if err != nil {
						return err
					}
					if len(pend) > 0 && r.Seq >= pend[0].Seq {
						continue // in the log too
					}
					r.Friend, r.Outgoing = friend, string(top) == string(bucketOut)
					got = append(got, r)
				}
			}
			slices.Reverse(got) // oldest first, so ties in time keep sequence order
			for i := range got {
				got[i].Delivered = got[i].Outgoing && got[i].Seq <= delivered
			}
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
