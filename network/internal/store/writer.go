package store

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"p2pchat/network/wire"
)

// The writer is the one goroutine that writes. It takes a request, and
// every other one waiting by then, into one transaction and one commit:
// while a commit syncs, the next batch gathers.
//
// Requests that nobody waits for soon (delivered marks) are lazy: they are
// held until a request that is waited for comes, or lazyDelay passes, so
// that they never cost a sync of their own on a message's path.

// maxBatch bounds the requests in one transaction.
const maxBatch = 4096

// lazyDelay is the longest a lazy request waits for company.
const lazyDelay = 200 * time.Millisecond

// request is one write: messages to insert (rows), then apply.
type request struct {
	rows    []newRow
	apply   func(w *txn) error // nil for none
	lazy    bool
	unsyncd bool // written at once on the connection that does not sync
	p       *Pending
}

// Pending is a write on its way to the disk.
type Pending struct {
	done chan struct{}
	err  error
}

// Done is closed when the write is durable or has failed.
func (p *Pending) Done() <-chan struct{} { return p.done }

// Wait waits until the write is durable, or returns why it failed: then
// nothing of it was written.
func (p *Pending) Wait() error {
	<-p.done
	return p.err
}

// Err is the write's error once Done is closed.
func (p *Pending) Err() error { return p.err }

func (p *Pending) finish(err error) {
	p.err = err
	close(p.done)
}

// submit hands r to the writer.
func (db *DB) submit(r *request) *Pending {
	r.p = &Pending{done: make(chan struct{})}
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		r.p.finish(ErrClosed)
		return r.p
	}
	db.reqs <- r
	return r.p
}

// txn is a transaction of the writer, on its connection. Statements are
// prepared once per connection and reused by every transaction: going
// through database/sql's Tx would prepare them again each time.
type txn struct {
	w *connWriter
}

func (t *txn) exec(query string, args ...any) (sql.Result, error) {
	s, err := t.w.stmt(query)
	if err != nil {
		return nil, err
	}
	return s.Exec(args...)
}

// writer runs the writes: synced ones on one connection, unsynced ones
// (shown marks) on another with synchronous=OFF.
func (db *DB) writer() {
	defer db.wg.Done()
	ctx := context.Background()
	synced, err1 := db.sql.Conn(ctx)
	unsynced, err2 := db.sql.Conn(ctx)
	if err := errors.Join(err1, err2); err != nil {
		db.failAll(db.fail("cannot write to", err))
		return
	}
	w := &connWriter{db: db, conn: synced, prepared: map[string]*sql.Stmt{}}
	u := &connWriter{db: db, conn: unsynced, prepared: map[string]*sql.Stmt{}}
	defer w.close()
	defer u.close()
	if _, err := unsynced.ExecContext(ctx, `PRAGMA synchronous = OFF`); err != nil {
		db.failAll(db.fail("cannot write to", err))
		return
	}

	var lazy []*request
	due := time.NewTimer(time.Hour)
	due.Stop()
	for {
		var batch []*request
		waited := false // someone waits for this batch: commit it now
		select {
		case r := <-db.reqs:
			batch = append(batch, r)
		case <-due.C:
			batch, lazy, waited = lazy, nil, true
		case <-db.quit:
			// Close waited for submitters: what is queued is all there is.
			for {
				select {
				case r := <-db.reqs:
					lazy = append(lazy, r)
					continue
				default:
				}
				break
			}
			w.commit(splitUnsynced(lazy, u))
			return
		}
	more:
		for len(batch) < maxBatch {
			select {
			case r := <-db.reqs:
				batch = append(batch, r)
			default:
				break more
			}
		}
		batch = splitUnsynced(batch, u)
		for _, r := range batch {
			waited = waited || !r.lazy
		}
		if !waited && len(batch) > 0 {
			if len(lazy) == 0 {
				due.Reset(lazyDelay)
			}
			lazy = append(lazy, batch...)
			continue
		}
		if len(lazy) > 0 {
			due.Stop()
			batch = append(lazy, batch...)
			lazy = nil
		}
		w.commit(batch)
	}
}

// splitUnsynced writes the unsynced requests of batch at once, in order,
// and returns the rest.
func splitUnsynced(batch []*request, u *connWriter) []*request {
	rest := batch[:0]
	for _, r := range batch {
		if r.unsyncd {
			u.commit([]*request{r})
		} else {
			rest = append(rest, r)
		}
	}
	return rest
}

// failAll fails every request from now on: the writer could not start.
func (db *DB) failAll(err error) {
	for {
		select {
		case r := <-db.reqs:
			r.p.finish(err)
		case <-db.quit:
			return
		}
	}
}

// connWriter commits batches on one connection.
type connWriter struct {
	db       *DB
	conn     *sql.Conn
	prepared map[string]*sql.Stmt
}

func (w *connWriter) close() {
	for _, s := range w.prepared {
		s.Close()
	}
	w.conn.Close()
}

// commit applies batch in one transaction. If that fails, each request is
// tried alone, so that one bad request cannot fail the others; a full disk
// fails them all.
func (w *connWriter) commit(batch []*request) {
	if len(batch) == 0 {
		return
	}
	err := w.run(batch)
	if err != nil && len(batch) > 1 && !errors.Is(err, ErrNoSpace) {
		for _, r := range batch {
			w.commit([]*request{r})
		}
		return
	}
	w.db.lastMu.Lock()
	w.db.lastErr = err
	w.db.lastMu.Unlock()
	if err == nil {
		w.db.commits.Add(1)
	}
	for _, r := range batch {
		r.p.finish(err)
	}
}

// newRow is a message to insert.
type newRow struct {
	row      int64
	friend   string
	outgoing bool
	stream   wire.StreamID
	seq      uint64
	sent, at int64 // Unix milliseconds
	group    string
	copyOf   int64 // see the column copy_of
	text     string
	period   int64 // received: the start of the usage period it counts in, Unix milliseconds
}

// insertRows is the most rows one INSERT statement takes.
const insertRows = 64

// insert inserts rows, insertRows a statement, raises the received mark
// of each friend's stream to the highest sequence number received, and
// adds what was received to each friend's usage.
func (t *txn) insert(rows []newRow) error {
	type key struct {
		friend string
		stream wire.StreamID
	}
	type period struct {
		friend string
		start  int64
	}
	received := map[key]uint64{}
	usage := map[period]int64{}
	args := make([]any, 0, 10*insertRows)
	for len(rows) > 0 {
		n := min(len(rows), insertRows)
		args = args[:0]
		for _, r := range rows[:n] {
			args = append(args, r.row, r.friend, r.outgoing, r.stream[:], int64(r.seq), r.sent, r.at, r.group, r.copyOf, r.text)
			if !r.outgoing {
				k := key{r.friend, r.stream}
				received[k] = max(received[k], r.seq)
				usage[period{r.friend, r.period}] += int64(len(r.text))
			}
		}
		q := `INSERT INTO messages (row, friend, outgoing, stream, seq, sent, at, grp, copy_of, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)` +
			strings.Repeat(`, (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, n-1)
		if _, err := t.exec(q, args...); err != nil {
			return err
		}
		rows = rows[n:]
	}
	for k, seq := range received {
		if _, err := t.exec(`INSERT INTO received (friend, stream, seq) VALUES (?, ?, ?) ON CONFLICT (friend, stream) DO UPDATE SET seq = max(seq, excluded.seq)`,
			k.friend, k.stream[:], int64(seq)); err != nil {
			return err
		}
	}
	for p, bytes := range usage {
		if _, err := t.exec(`INSERT INTO usage (friend, period, bytes) VALUES (?, ?, ?) ON CONFLICT (friend, period) DO UPDATE SET bytes = bytes + excluded.bytes`,
			p.friend, p.start, bytes); err != nil {
			return err
		}
	}
	return nil
}

// stmt returns query prepared on w's connection.
func (w *connWriter) stmt(query string) (*sql.Stmt, error) {
	if s, ok := w.prepared[query]; ok {
		return s, nil
	}
	s, err := w.conn.PrepareContext(context.Background(), query)
	if err != nil {
		return nil, err
	}
	w.prepared[query] = s
	return s, nil
}

func (w *connWriter) run(batch []*request) error {
	t := &txn{w: w}
	if _, err := t.exec(`BEGIN IMMEDIATE`); err != nil {
		return w.db.fail("cannot write to", err)
	}
	// Every insert first, many rows a statement: an update in the batch
	// may refer to a row inserted in it, never the other way round.
	var rows []newRow
	for _, r := range batch {
		rows = append(rows, r.rows...)
	}
	if err := t.insert(rows); err != nil {
		w.rollback()
		return w.db.fail("cannot write to", err)
	}
	for _, r := range batch {
		if r.apply == nil {
			continue
		}
		if err := r.apply(t); err != nil {
			w.rollback()
			return w.db.fail("cannot write to", err)
		}
	}
	if _, err := t.exec(`COMMIT`); err != nil {
		w.rollback()
		return w.db.fail("cannot write to", err)
	}
	return nil
}

// rollback ends a failed transaction, if SQLite has not already.
func (w *connWriter) rollback() {
	w.conn.ExecContext(context.Background(), `ROLLBACK`)
}
