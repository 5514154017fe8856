package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"p2pchat/network/wire"
)

// Out is a message AddOut recorded: its place in the database and its
// identity on the wire.
type Out struct {
	Row    int64
	Stream wire.StreamID
	Seq    uint64
}

// AddOut records a message to friend, queued until delivered, under the
// next sequence number in this run's stream. It is durable once the
// Pending is done. A number is never given twice, even when the write
// fails: the message may have gone out while it was being written.
func (db *DB) AddOut(friend, text string, sent time.Time) (Out, *Pending) {
	return db.AddGroupOut(friend, "", text, sent, 0)
}

// AddGroupOut is AddOut for friend's copy of a message written to group
// (without its '@'). first is the row of the message's first copy, 0 for
// the first copy itself.
func (db *DB) AddGroupOut(friend, group, text string, sent time.Time, first int64) (Out, *Pending) {
	db.seqMu.Lock()
	db.lastSeq[friend]++
	seq := db.lastSeq[friend]
	db.seqMu.Unlock()
	row, stream := db.nextRow.Add(1), db.stream
	ms := sent.UnixMilli()
	var copyOf int64
	if group != "" {
		copyOf = first
		if first == 0 {
			copyOf = row
		}
	}
	p := db.submit(&request{rows: []newRow{{row: row, friend: friend, outgoing: true, stream: stream, seq: seq, sent: ms, at: ms, group: group, copyOf: copyOf, text: text}}})
	return Out{Row: row, Stream: stream, Seq: seq}, p
}

// MarkDelivered records the friend's acknowledgement of every message to
// friend up to row. It is lazy: it rides with the next write that is
// waited for, or within lazyDelay. Losing it in a crash costs only a
// message sent again, which the friend recognises.
func (db *DB) MarkDelivered(friend string, upTo int64) *Pending {
	return db.submit(&request{lazy: true, apply: func(t *txn) error {
		_, err := t.exec(`INSERT INTO marks (friend, delivered) VALUES (?, ?) ON CONFLICT (friend) DO UPDATE SET delivered = max(delivered, excluded.delivered)`, friend, upTo)
		return err
	}})
}

// In is a message received, for AddIn.
type In struct {
	Stream wire.StreamID
	Seq    uint64
	Group  string // the group it was written to, without '@'; "" for none
	Text   string
	Sent   time.Time
	Row    int64 // set by AddIn
	Late   bool  // it fills a gap another message skipped (Gap)
}

// Gap is the sequence numbers From to To of a friend's stream, which a
// message that came ahead of them skipped.
type Gap struct {
	Stream   wire.StreamID
	From, To uint64
}

// MaxGap bounds the numbers one gap records: more than a carrier holds
// for one sender.
const MaxGap = 10000

// AddIn records messages received from friend, in order, and raises the
// received mark of each of their streams. It sets each one's Row. The
// bytes of their text count in the friend's usage of the period that
// starts at period (see Usage). They are durable once the Pending is done.
func (db *DB) AddIn(friend string, msgs []In, period time.Time) *Pending {
	now := time.Now().UnixMilli()
	first := db.nextRow.Add(int64(len(msgs))) - int64(len(msgs)) + 1
	for i := range msgs {
		msgs[i].Row = first + int64(i)
	}
	rows := make([]newRow, len(msgs))
	for i, m := range msgs {
		rows[i] = newRow{row: m.Row, friend: friend, stream: m.Stream, seq: m.Seq, sent: m.Sent.UnixMilli(), at: now, group: m.Group, text: m.Text, period: period.UnixMilli()}
	}
	return db.submit(&request{rows: rows})
}

// AddInGaps is AddIn for messages that may have come out of order: it
// also records gaps, and forgets the gap entry of each message that is
// Late, in the same transaction.
func (db *DB) AddInGaps(friend string, msgs []In, gaps []Gap, period time.Time) *Pending {
	now := time.Now().UnixMilli()
	first := db.nextRow.Add(int64(len(msgs))) - int64(len(msgs)) + 1
	rows := make([]newRow, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		m.Row = first + int64(i)
		rows[i] = newRow{row: m.Row, friend: friend, stream: m.Stream, seq: m.Seq, sent: m.Sent.UnixMilli(), at: now, group: m.Group, text: m.Text, period: period.UnixMilli()}
	}
	return db.submit(&request{rows: rows, apply: func(t *txn) error {
		for _, g := range gaps {
			if g.To < g.From || g.To-g.From >= MaxGap {
				return fmt.Errorf("a gap of %d to %d is too wide", g.From, g.To)
			}
			for seq := g.From; seq <= g.To; seq++ {
				if _, err := t.exec(`INSERT INTO missing (friend, stream, seq) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`, friend, g.Stream[:], int64(seq)); err != nil {
					return err
				}
			}
		}
		for _, m := range msgs {
			if m.Late {
				if _, err := t.exec(`DELETE FROM missing WHERE friend = ? AND stream = ? AND seq = ?`, friend, m.Stream[:], int64(m.Seq)); err != nil {
					return err
				}
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
		_, err := t.exec(`INSERT INTO marks (friend, shown) VALUES (?, ?) ON CONFLICT (friend) DO UPDATE SET shown = max(shown, excluded.shown)`, friend, upTo)
		return err
	}}).Wait()
}

// Received returns the highest sequence number received from friend in
// stream; zero for none.
func (db *DB) Received(friend string, stream wire.StreamID) (uint64, error) {
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

// Period is what a friend sent in one period: AddIn's bytes of text.
type Period struct {
	Start time.Time
	Bytes int64
}

// Usage returns what friend sent in the periods that start at or after
// since, oldest first.
func (db *DB) Usage(friend string, since time.Time) ([]Period, error) {
	rows, err := db.sql.Query(`SELECT period, bytes FROM usage WHERE friend = ? AND period >= ? ORDER BY period`, friend, since.UnixMilli())
	if err != nil {
		return nil, db.fail("cannot read", err)
	}
	defer rows.Close()
	var out []Period
	for rows.Next() {
		var start, bytes int64
		if err := rows.Scan(&start, &bytes); err != nil {
			return nil, db.fail("cannot read", err)
		}
		out = append(out, Period{Start: time.UnixMilli(start), Bytes: bytes})
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("cannot read", err)
	}
	return out, nil
}

// ForgetUsage deletes the usage of every period that starts before
// before. It is lazy, as MarkDelivered is.
func (db *DB) ForgetUsage(before time.Time) *Pending {
	return db.submit(&request{lazy: true, apply: func(t *txn) error {
		_, err := t.exec(`DELETE FROM usage WHERE period < ?`, before.UnixMilli())
		return err
	}})
}

// selectMessage selects messages with their Done, from their friend's
// marks.
const selectMessage = `SELECT m.row, m.friend, m.outgoing, m.stream, m.seq, m.sent, m.at, m.grp, m.text,
	m.row <= CASE WHEN m.outgoing THEN coalesce(k.delivered, 0) ELSE coalesce(k.shown, 0) END
	FROM messages m LEFT JOIN marks k ON k.friend = m.friend `

// Queue returns the messages to friend not yet delivered, oldest first.
func (db *DB) Queue(friend string) ([]Message, error) {
	return db.query(selectMessage+`WHERE m.friend = ?1 AND m.outgoing = 1
		AND m.row > coalesce((SELECT delivered FROM marks WHERE friend = ?1), 0) ORDER BY m.row`, friend)
}

// Unshown returns the messages received from friend and not marked shown,
// oldest first: the ones a crash caught between the two.
func (db *DB) Unshown(friend string) ([]Message, error) {
	return db.query(selectMessage+`WHERE m.friend = ?1 AND m.outgoing = 0
		AND m.row > coalesce((SELECT shown FROM marks WHERE friend = ?1), 0) ORDER BY m.row`, friend)
}

// History returns the last n messages exchanged with friend, both ways,
// in the order they were recorded here, oldest first.
func (db *DB) History(friend string, n int) ([]Message, error) {
	ms, err := db.query(selectMessage+`WHERE m.friend = ? ORDER BY m.row DESC LIMIT ?`, friend, n)
	slices.Reverse(ms)
	return ms, err
}

// GroupMessage is one message of a group's history: one we sent, whatever
// the number of its copies, or one received.
type GroupMessage struct {
	Row       int64  // its first row
	Outgoing  bool   // sent by us
	From      string // received: the sender
	Text      string
	Sent      time.Time // the writer's clock
	At        time.Time // when it was recorded here
	To        []string  // sent: the friends it was written to, a copy each
	Delivered []string  // sent: those who acknowledged their copy
}

// GroupHistory returns the last n messages written to group (without its
// '@'), both ways, in the order they were recorded here, oldest first. The
// copies of a message we sent (a row per friend, with the same copy_of)
// make one. It reads every message of the group.
func (db *DB) GroupHistory(group string, n int) ([]GroupMessage, error) {
	rows, err := db.sql.QueryContext(context.Background(), `SELECT min(m.row) AS first, m.outgoing, m.friend, m.sent, min(m.at), m.text,
			group_concat(m.friend, ' '),
			coalesce(group_concat(CASE WHEN m.row <= coalesce(k.delivered, 0) THEN m.friend END, ' '), '')
		FROM messages m LEFT JOIN marks k ON k.friend = m.friend
		WHERE m.grp = ?1 AND m.grp != ''
		GROUP BY m.outgoing, CASE WHEN m.outgoing THEN m.copy_of ELSE m.row END
		ORDER BY first DESC LIMIT ?2`, group, n)
	if err != nil {
		return nil, db.fail("cannot read", err)
	}
	defer rows.Close()
	var out []GroupMessage
	for rows.Next() {
		var m GroupMessage
		var sent, at int64
		var to, delivered string
		if err := rows.Scan(&m.Row, &m.Outgoing, &m.From, &sent, &at, &m.Text, &to, &delivered); err != nil {
			return nil, db.fail("cannot read", err)
		}
		m.Sent, m.At = time.UnixMilli(sent), time.UnixMilli(at)
		if m.Outgoing {
			// Names never hold a space (wire.CheckName).
			m.From, m.To, m.Delivered = "", strings.Fields(to), strings.Fields(delivered)
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("cannot read", err)
	}
	slices.Reverse(out)
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
		if err := rows.Scan(&m.Row, &m.Friend, &m.Outgoing, &stream, &seq, &sent, &at, &m.Group, &m.Text, &m.Done); err != nil {
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
