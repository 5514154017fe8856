package store

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"time"
)

// Out is a message AddOut recorded: its place in the database and its
// identity on the wire.
type Out struct {
	Row    int64
	Stream StreamID
	Seq    uint64
}

// AddOut records a message to friend, queued until delivered, under the
// next sequence number in this run's stream. It is durable once the
// Pending is done. A number is never given twice, even when the write
// fails: the message may have gone out while it was being written.
func (db *DB) AddOut(friend, text string, sent time.Time) (Out, *Pending) {
	db.seqMu.Lock()
	db.lastSeq[friend]++
	seq := db.lastSeq[friend]
	db.seqMu.Unlock()
	row, stream := db.nextRow.Add(1), db.stream
	p := db.submit(&request{apply: func(t *txn) error {
		_, err := t.exec(`INSERT INTO messages (row, friend, outgoing, stream, seq, sent, at, text) VALUES (?, ?, 1, ?, ?, ?, ?, ?)`,
			row, friend, stream[:], int64(seq), sent.UnixMilli(), sent.UnixMilli(), text)
		return err
	}})
	return Out{Row: row, Stream: stream, Seq: seq}, p
}

// MarkDelivered records the friend's acknowledgement of every message to
// friend up to row. It is lazy: it rides with the next write that is
// waited for, or within lazyDelay. Losing it in a crash costs only a
// message sent again, which the friend recognises.
func (db *DB) MarkDelivered(friend string, upTo int64) *Pending {
	return db.submit(&request{lazy: true, apply: func(t *txn) error {
		_, err := t.exec(`UPDATE messages SET done = 1 WHERE friend = ? AND outgoing = 1 AND done = 0 AND row <= ?`, friend, upTo)
		return err
	}})
}

// In is a message received, for AddIn.
type In struct {
	Stream StreamID
	Seq    uint64
	Text   string
	Sent   time.Time
	Row    int64 // set by AddIn
}

// AddIn records messages received from friend, in order, and raises the
// received mark of each of their streams. It sets each one's Row. They
// are durable once the Pending is done.
func (db *DB) AddIn(friend string, msgs []In) *Pending {
	now := time.Now().UnixMilli()
	first := db.nextRow.Add(int64(len(msgs))) - int64(len(msgs)) + 1
	for i := range msgs {
		msgs[i].Row = first + int64(i)
	}
	rows := slices.Clone(msgs)
	return db.submit(&request{apply: func(t *txn) error {
		for _, m := range rows {
			if _, err := t.exec(`INSERT INTO messages (row, friend, outgoing, stream, seq, sent, at, text) VALUES (?, ?, 0, ?, ?, ?, ?, ?)`,
				m.Row, friend, m.Stream[:], int64(m.Seq), m.Sent.UnixMilli(), now, m.Text); err != nil {
				return err
			}
		}
		last := map[StreamID]uint64{}
		for _, m := range rows {
			last[m.Stream] = max(last[m.Stream], m.Seq)
		}
		for s, seq := range last {
			if _, err := t.exec(`INSERT INTO received (friend, stream, seq) VALUES (?, ?, ?) ON CONFLICT (friend, stream) DO UPDATE SET seq = max(seq, excluded.seq)`,
				friend, s[:], int64(seq)); err != nil {
				return err
			}
		}
		return nil
	}})
}

// MarkShown records that the messages received from friend up to row have
// been shown, and returns once that is written. It is written at once but
// not synced: it survives the process being killed (the kernel has it), and
// only a power loss, when the screen is gone too, can show a few messages
// again.
func (db *DB) MarkShown(friend string, upTo int64) error {
	return db.submit(&request{unsyncd: true, apply: func(t *txn) error {
		_, err := t.exec(`UPDATE messages SET done = 1 WHERE friend = ? AND outgoing = 0 AND done = 0 AND row <= ?`, friend, upTo)
		return err
	}}).Wait()
}

// Received returns the highest sequence number received from friend in
// stream; zero for none.
func (db *DB) Received(friend string, stream StreamID) (uint64, error) {
	var seq int64
	err := db.sql.QueryRow(`SELECT seq FROM received WHERE friend = ? AND stream = ?`, friend, stream[:]).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, db.fail("cannot read", err)
	}
	return uint64(seq), nil
}

const selectMessage = `SELECT row, friend, outgoing, stream, seq, sent, at, text, done FROM messages `

// Queue returns the messages to friend not yet delivered, oldest first.
func (db *DB) Queue(friend string) ([]Message, error) {
	return db.query(selectMessage+`WHERE friend = ? AND outgoing = 1 AND done = 0 ORDER BY row`, friend)
}

// Unshown returns the messages received from friend and not marked shown,
// oldest first: the ones a crash caught between the two.
func (db *DB) Unshown(friend string) ([]Message, error) {
	return db.query(selectMessage+`WHERE friend = ? AND outgoing = 0 AND done = 0 ORDER BY row`, friend)
}

// History returns the last n messages exchanged with friend, both ways,
// in the order they were recorded here, oldest first.
func (db *DB) History(friend string, n int) ([]Message, error) {
	ms, err := db.query(selectMessage+`WHERE friend = ? ORDER BY row DESC LIMIT ?`, friend, n)
	slices.Reverse(ms)
	return ms, err
}

// Waiting returns how many messages wait for delivery, per friend.
func (db *DB) Waiting() (map[string]int, error) {
	rows, err := db.sql.Query(`SELECT friend, count(*) FROM messages WHERE outgoing = 1 AND done = 0 GROUP BY friend`)
	if err != nil {
		return nil, db.fail("cannot read", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var f string
		var n int
		if err := rows.Scan(&f, &n); err != nil {
			return nil, db.fail("cannot read", err)
		}
		out[f] = n
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("cannot read", err)
	}
	return out, nil
}

func (db *DB) query(q string, args ...any) ([]Message, error) {
	rows, err := db.sql.QueryContext(context.Background(), q, args...)
	if err != nil {
		return nil, db.fail("cannot read", err)
	}
	defer rows.Close()
	var out []Message
	for rows.Next() {
		var m Message
		var stream []byte
		var seq, sent, at int64
		if err := rows.Scan(&m.Row, &m.Friend, &m.Outgoing, &stream, &seq, &sent, &at, &m.Text, &m.Done); err != nil {
			return nil, db.fail("cannot read", err)
		}
		copy(m.Stream[:], stream)
		m.Seq, m.Sent, m.At = uint64(seq), time.UnixMilli(sent), time.UnixMilli(at)
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("cannot read", err)
	}
	return out, nil
}
