package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"p2pchat/network/internal/store/legacy"

	"p2pchat/network/wire"
)

// oldName is p2pchat 0.1's store in the data directory, and oldDir where
// its files are kept once they have been moved into the database.
const (
	oldName = "p2pchat.db"
	oldDir  = "old-store"
)

// upgrade moves a p2pchat 0.1 store in dir into the database, in one
// transaction, then moves its files into dir/old-store. Queued messages go
// out again under a stream of their own, numbered from 1; the rest is
// history, with what was delivered and shown kept. A crash after the
// commit and before the files moved is recognised by the meta row, and the
// move is finished.
func (db *DB) upgrade(dir string) error {
	old := filepath.Join(dir, oldName)
	files := legacy.Files(old)
	if len(files) == 0 {
		return nil
	}
	db.fresh = false // it starts with what the old store held
	var done string
	err := db.sql.QueryRow(`SELECT value FROM meta WHERE key = 'upgraded-from-0.1'`).Scan(&done)
	if err != nil && done == "" {
		msgs, err := legacy.Read(old)
		if err != nil {
			return fmt.Errorf("cannot upgrade the message store of p2pchat 0.1: %w", err)
		}
		if err := db.importOld(msgs); err != nil {
			return db.fail("cannot upgrade the message store of p2pchat 0.1 into", err)
		}
		db.moved = len(msgs)
	}
	keep := filepath.Join(dir, oldDir)
	if err := os.Mkdir(keep, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("cannot keep the files of p2pchat 0.1's store: %w", err)
	}
	for _, f := range files {
		if err := os.Rename(f, filepath.Join(keep, filepath.Base(f))); err != nil {
			return fmt.Errorf("cannot keep the files of p2pchat 0.1's store: %w", err)
		}
	}
	return nil
}

func (db *DB) importOld(msgs []legacy.Message) error {
	tx, err := db.sql.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var last int64
	if err := tx.QueryRow(`SELECT coalesce(max(row), 0) FROM messages`).Scan(&last); err != nil {
		return err
	}
	// Old messages keep their numbers in a stream of zeros, which no
	// friend will ever send again; queued ones get a new stream.
	var oldStream wire.StreamID
	queued := NewStreamID()
	if _, err := tx.Exec(`INSERT INTO streams (id, started) VALUES (?, ?)`, queued[:], 0); err != nil {
		return err
	}
	// The marks cover each friend's longest run, in row order, of
	// messages delivered (sent) or shown (received).
	type marks struct {
		delivered, shown int64
		sentGap, inGap   bool // a message not delivered, not shown, was met
	}
	mark := map[string]*marks{}
	seqs := map[string]uint64{}
	for _, m := range msgs {
		last++
		k := mark[m.Friend]
		if k == nil {
			k = &marks{}
			mark[m.Friend] = k
		}
		stream, seq := oldStream, m.Seq
		at := m.At
		switch {
		case m.Outgoing && m.Delivered && !k.sentGap:
			at = m.Sent
			k.delivered = last
		case m.Outgoing:
			// Waiting, or delivered after one that waits (clocks that
			// went back): sent again, under the new numbering.
			at = m.Sent
			k.sentGap = true
			seqs[m.Friend]++
			stream, seq = queued, seqs[m.Friend]
		case m.Shown:
			if !k.inGap {
				k.shown = last
			}
		default:
			k.inGap = true
		}
		_, err := tx.Exec(`INSERT INTO messages (row, friend, outgoing, stream, seq, sent, at, text) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			last, m.Friend, m.Outgoing, stream[:], int64(seq), millis(m.Sent), millis(at), m.Text)
		if err != nil {
			return err
		}
	}
	for friend, k := range mark {
		if _, err := tx.Exec(`INSERT INTO marks (friend, delivered, shown) VALUES (?, ?, ?)`, friend, k.delivered, k.shown); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(`INSERT INTO meta (key, value) VALUES ('upgraded-from-0.1', ?)`, fmt.Sprint(len(msgs))); err != nil {
		return err
	}
	return tx.Commit()
}

// millis is t in Unix milliseconds, 0 for the zero time.
func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}
