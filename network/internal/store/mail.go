package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"p2pchat/network/wire"
)

// Carried mail: the cards friends hand on, the sealed copies this instance
// carries for others, the receipts it carries back, and the sequence
// numbers a letter that came ahead of them skipped.

// PutCard keeps name's card (an encoded wire.Card), replacing the one
// before; durable once the Pending is done.
func (db *DB) PutCard(name string, card []byte) *Pending {
	return db.submit(&request{apply: func(t *txn) error {
		_, err := t.exec(`INSERT INTO cards (name, card) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET card = excluded.card`, name, card)
		return err
	}})
}

// Cards returns every card kept, by name.
func (db *DB) Cards() (map[string][]byte, error) {
	rows, err := db.sql.QueryContext(context.Background(), `SELECT name, card FROM cards`)
	if err != nil {
		return nil, db.fail("cannot read", err)
	}
	defer rows.Close()
	out := make(map[string][]byte)
	for rows.Next() {
		var name string
		var card []byte
		if err := rows.Scan(&name, &card); err != nil {
			return nil, db.fail("cannot read", err)
		}
		out[name] = card
	}
	return out, rows.Err()
}

// Carried is a sealed copy carried from Sender to Recipient.
type Carried struct {
	Row               int64
	Sender, Recipient string
	Stream            wire.StreamID
	Seq               uint64
	Expires           time.Time
	Mail              []byte // the encoded wire.Mail
}

// ErrBudget means a sender's carried mail is over its budget.
var ErrBudget = errors.New("over the budget for mail carried for this friend")

// Budget bounds what one sender may have carried here.
type Budget struct {
	Messages int
	Bytes    int64
}

// AddCarried records c unless the same copy is held already, and unless
// what c.Sender has carried here would go over b: then the Pending fails
// with ErrBudget and nothing is written. The budget is read before the
// write, outside its transaction, so that a refusal never fails the other
// writes of a group commit; connections from one sender may overshoot it
// by the copies they add at the same moment.
func (db *DB) AddCarried(c Carried, b Budget) *Pending {
	var n int
	var size int64
	err := db.sql.QueryRow(`SELECT count(*), coalesce(sum(size), 0) FROM carried WHERE sender = ?`, c.Sender).Scan(&n, &size)
	if err == nil && (n+1 > b.Messages || size+int64(len(c.Mail)) > b.Bytes) {
		err = fmt.Errorf("%w: %d messages, %d bytes", ErrBudget, n, size)
	} else if err != nil {
		err = db.fail("cannot read", err)
	}
	if err != nil {
		p := &Pending{done: make(chan struct{})}
		p.finish(err)
		return p
	}
	return db.submit(&request{apply: func(t *txn) error {
		_, err := t.exec(`INSERT INTO carried (sender, recipient, stream, seq, expires, size, mail) VALUES (?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (sender, recipient, stream, seq) DO NOTHING`,
			c.Sender, c.Recipient, c.Stream[:], int64(c.Seq), c.Expires.UnixMilli(), len(c.Mail), c.Mail)
		return err
	}})
}

// CarriedFor returns the copies carried for recipient that have not
// expired, oldest first.
func (db *DB) CarriedFor(recipient string, now time.Time) ([]Carried, error) {
	rows, err := db.sql.QueryContext(context.Background(), `SELECT row, sender, recipient, stream, seq, expires, mail FROM carried
		WHERE recipient = ? AND expires > ? ORDER BY row`, recipient, now.UnixMilli())
	if err != nil {
		return nil, db.fail("cannot read", err)
	}
	defer rows.Close()
	var out []Carried
	for rows.Next() {
		var c Carried
		var stream []byte
		var seq, expires int64
		if err := rows.Scan(&c.Row, &c.Sender, &c.Recipient, &stream, &seq, &expires, &c.Mail); err != nil {
			return nil, db.fail("cannot read", err)
		}
		copy(c.Stream[:], stream)
		c.Seq, c.Expires = uint64(seq), time.UnixMilli(expires)
		out = append(out, c)
	}
	return out, rows.Err()
}

// CarriedCounts returns how many copies are carried for each recipient.
func (db *DB) CarriedCounts() (map[string]int, error) {
	rows, err := db.sql.QueryContext(context.Background(), `SELECT recipient, count(*) FROM carried GROUP BY recipient`)
	if err != nil {
		return nil, db.fail("cannot read", err)
	}
	defer rows.Close()
	out := make(map[string]int)
	for rows.Next() {
		var name string
		var n int
		if err := rows.Scan(&name, &n); err != nil {
			return nil, db.fail("cannot read", err)
		}
		out[name] = n
	}
	return out, rows.Err()
}

// DropCarried forgets the copy of (sender, recipient, stream, seq): it was
// delivered.
func (db *DB) DropCarried(sender, recipient string, stream wire.StreamID, seq uint64) *Pending {
	return db.submit(&request{apply: func(t *txn) error {
		_, err := t.exec(`DELETE FROM carried WHERE sender = ? AND recipient = ? AND stream = ? AND seq = ?`, sender, recipient, stream[:], int64(seq))
		return err
	}})
}

// Expire forgets the copies and receipts whose time is up.
func (db *DB) Expire(now time.Time) *Pending {
	return db.submit(&request{apply: func(t *txn) error {
		if _, err := t.exec(`DELETE FROM carried WHERE expires <= ?`, now.UnixMilli()); err != nil {
			return err
		}
		_, err := t.exec(`DELETE FROM receipts WHERE expires <= ?`, now.UnixMilli())
		return err
	}})
}

// Receipt is a recipient's signed receipt carried back to Sender.
type Receipt struct {
	Sender, Recipient string
	Stream            wire.StreamID
	Seq               uint64
	Receipt           []byte // the encoded wire.Receipt
}

// AddReceipt keeps r until the sender takes it, or expires.
func (db *DB) AddReceipt(r Receipt, expires time.Time) *Pending {
	return db.submit(&request{apply: func(t *txn) error {
		_, err := t.exec(`INSERT INTO receipts (sender, recipient, stream, seq, receipt, expires) VALUES (?, ?, ?, ?, ?, ?)
			ON CONFLICT DO NOTHING`, r.Sender, r.Recipient, r.Stream[:], int64(r.Seq), r.Receipt, expires.UnixMilli())
		return err
	}})
}

// ReceiptsFor returns the receipts carried back to sender.
func (db *DB) ReceiptsFor(sender string) ([]Receipt, error) {
	rows, err := db.sql.QueryContext(context.Background(), `SELECT sender, recipient, stream, seq, receipt FROM receipts WHERE sender = ?`, sender)
	if err != nil {
		return nil, db.fail("cannot read", err)
	}
	defer rows.Close()
	var out []Receipt
	for rows.Next() {
		var r Receipt
		var stream []byte
		var seq int64
		if err := rows.Scan(&r.Sender, &r.Recipient, &stream, &seq, &r.Receipt); err != nil {
			return nil, db.fail("cannot read", err)
		}
		copy(r.Stream[:], stream)
		r.Seq = uint64(seq)
		out = append(out, r)
	}
	return out, rows.Err()
}

// DropReceipt forgets a receipt the sender took.
func (db *DB) DropReceipt(sender, recipient string, stream wire.StreamID, seq uint64) *Pending {
	return db.submit(&request{apply: func(t *txn) error {
		_, err := t.exec(`DELETE FROM receipts WHERE sender = ? AND recipient = ? AND stream = ? AND seq = ?`, sender, recipient, stream[:], int64(seq))
		return err
	}})
}

// Missing reports whether seq of friend's stream was skipped by a message
// that came ahead of it, and has not come since.
func (db *DB) Missing(friend string, stream wire.StreamID, seq uint64) (bool, error) {
	var one int
	err := db.sql.QueryRow(`SELECT 1 FROM missing WHERE friend = ? AND stream = ? AND seq = ?`, friend, stream[:], int64(seq)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, db.fail("cannot read", err)
	}
	return true, nil
}
