package store

import (
	"context"
	"fmt"
)

// migrations take the schema from version i to i+1, one transaction each;
// PRAGMA user_version holds the version reached. Append to the list, never
// change an entry: databases in the field are at every version.
var migrations = []string{
	// 1: the first schema.
	`
	-- This instance's streams, one per start: the sender side of a
	-- message's identity.
	CREATE TABLE streams (
		id      BLOB PRIMARY KEY,  -- 16 random bytes
		started INTEGER NOT NULL   -- Unix milliseconds
	);
	-- Every message, both ways. row is the order of arrival here, which
	-- orders the history; nobody's clock does.
	CREATE TABLE messages (
		row      INTEGER PRIMARY KEY,
		friend   TEXT NOT NULL,
		outgoing INTEGER NOT NULL,  -- 1: sent by us; 0: received
		stream   BLOB NOT NULL,     -- the sender's stream
		seq      INTEGER NOT NULL,  -- the sender's sequence number in it
		sent     INTEGER NOT NULL,  -- the sender's clock, Unix milliseconds
		at       INTEGER NOT NULL,  -- when recorded here, Unix milliseconds
		text     TEXT NOT NULL
	);
	CREATE INDEX messages_by_friend ON messages (friend, row);
	-- The queue and what a crash kept from the screen, at start, without
	-- reading the rest of the history.
	CREATE INDEX messages_by_direction ON messages (friend, outgoing, row);
	-- Per friend, how far in row order the messages sent were delivered
	-- and those received were shown. Friends acknowledge in order and the
	-- shell shows in order, so one mark each says it for every message:
	-- the queue is what was sent after delivered, and what a crash kept
	-- from the screen what was received after shown.
	CREATE TABLE marks (
		friend    TEXT PRIMARY KEY,
		delivered INTEGER NOT NULL DEFAULT 0,
		shown     INTEGER NOT NULL DEFAULT 0
	) WITHOUT ROWID;
	-- The highest sequence number received in each of a friend's streams:
	-- a message at or below it is a duplicate.
	CREATE TABLE received (
		friend TEXT NOT NULL,
		stream BLOB NOT NULL,
		seq    INTEGER NOT NULL,
		PRIMARY KEY (friend, stream)
	) WITHOUT ROWID;
	-- Empty: primeWAL writes a blob here and deletes it at every start.
	CREATE TABLE wal_primer (b BLOB);
	-- Facts about the database itself, such as an upgrade done.
	CREATE TABLE meta (
		key   TEXT PRIMARY KEY,
		value TEXT NOT NULL
	) WITHOUT ROWID;
	`,
	// 2: the group a message was written to.
	`
	-- Without its '@' ('all' for every friend); '' for a message to one
	-- friend. A message to a group is one row per member, each with its
	-- own sequence number.
	ALTER TABLE messages ADD COLUMN grp TEXT NOT NULL DEFAULT '';
	-- For a copy of a message we sent to a group, the row of its first
	-- copy, which stands for the message; 0 for any other message.
	ALTER TABLE messages ADD COLUMN copy_of INTEGER NOT NULL DEFAULT 0;
	-- A group's history, without reading everyone else's.
	CREATE INDEX messages_by_group ON messages (grp, row) WHERE grp != '';
	`,
	// 3: what each friend sent, in bytes of text, per period: the budget
	// of what one friend may cost on disk, kept across restarts.
	`
	CREATE TABLE usage (
		friend TEXT NOT NULL,
		period INTEGER NOT NULL,  -- its start, Unix milliseconds
		bytes  INTEGER NOT NULL,
		PRIMARY KEY (friend, period)
	) WITHOUT ROWID;
	`,
	// 4: when each friend was last seen.
	`
	-- When each friend was last seen: a connection with them, either way,
	-- or a frame from them. Written at most once a minute per friend while
	-- they are online, and when a connection closes.
	CREATE TABLE last_seen (
		friend TEXT PRIMARY KEY,
		at     INTEGER NOT NULL  -- Unix milliseconds
	) WITHOUT ROWID;
	`,
	// 5: mail carried for friends.
	`
	-- The newest card of each friend (a wire.Card frame): what sealing
	-- mail to them takes.
	CREATE TABLE cards (
		name TEXT PRIMARY KEY,
		card BLOB NOT NULL
	) WITHOUT ROWID;
	-- Sealed copies carried for others (wire.Mail frames), until the
	-- recipient's receipt or expires.
	CREATE TABLE carried (
		row       INTEGER PRIMARY KEY,
		sender    TEXT NOT NULL,
		recipient TEXT NOT NULL,
		stream    BLOB NOT NULL,
		seq       INTEGER NOT NULL,
		expires   INTEGER NOT NULL,  -- Unix milliseconds
		size      INTEGER NOT NULL,
		mail      BLOB NOT NULL,
		UNIQUE (sender, recipient, stream, seq)
	);
	CREATE INDEX carried_by_recipient ON carried (recipient, row);
	-- Recipients' receipts (wire.Receipt frames) on their way back to the
	-- sender.
	CREATE TABLE receipts (
		sender    TEXT NOT NULL,
		recipient TEXT NOT NULL,
		stream    BLOB NOT NULL,
		seq       INTEGER NOT NULL,
		receipt   BLOB NOT NULL,
		expires   INTEGER NOT NULL,
		PRIMARY KEY (sender, recipient, stream, seq)
	) WITHOUT ROWID;
	-- Sequence numbers of a friend's stream that a message skipped when
	-- it came ahead of them: they are not duplicates when they come.
	CREATE TABLE missing (
		friend TEXT NOT NULL,
		stream BLOB NOT NULL,
		seq    INTEGER NOT NULL,
		PRIMARY KEY (friend, stream, seq)
	) WITHOUT ROWID;
	`,
}

// schemaVersion is the version this release writes.
var schemaVersion = len(migrations)

// migrate brings the schema up to schemaVersion. A database of a newer
// version is refused: this release would not know what it holds.
func (db *DB) migrate() error {
	ctx := context.Background()
	var v int
	if err := db.sql.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&v); err != nil {
		return err
	}
	if v > schemaVersion {
		return fmt.Errorf("%w (schema version %d; this one knows up to %d)", ErrNewer, v, schemaVersion)
	}
	for ; v < schemaVersion; v++ {
		tx, err := db.sql.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			tx.Rollback()
			return fmt.Errorf("schema version %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, v+1)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}
