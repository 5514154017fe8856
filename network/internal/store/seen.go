package store

import (
	"time"
)

// SetLastSeen records that friend was last seen at at, unless a later
// time is recorded already. It is lazy, as MarkDelivered is: it rides with
// the next write that is waited for, or goes within lazyDelay.
func (db *DB) SetLastSeen(friend string, at time.Time) *Pending {
	return db.submit(&request{lazy: true, apply: func(t *txn) error {
		_, err := t.exec(`INSERT INTO last_seen (friend, at) VALUES (?, ?) ON CONFLICT (friend) DO UPDATE SET at = max(at, excluded.at)`, friend, at.UnixMilli())
		return err
	}})
}

// LastSeen returns when each friend was last seen, by name; a friend never
// seen is not in it.
func (db *DB) LastSeen() (map[string]time.Time, error) {
	rows, err := db.sql.Query(`SELECT friend, at FROM last_seen`)
	if err != nil {
		return nil, db.fail("cannot read", err)
	}
	defer rows.Close()
	out := map[string]time.Time{}
	for rows.Next() {
		var friend string
		var at int64
		if err := rows.Scan(&friend, &at); err != nil {
			return nil, db.fail("cannot read", err)
		}
		out[friend] = time.UnixMilli(at)
	}
	if err := rows.Err(); err != nil {
		return nil, db.fail("cannot read", err)
	}
	return out, nil
}

// HasHistory reports whether a message with friend, either way, is
// recorded.
func (db *DB) HasHistory(friend string) (bool, error) {
	var n int
	if err := db.sql.QueryRow(`SELECT count(*) FROM (SELECT 1 FROM messages WHERE friend = ? LIMIT 1)`, friend).Scan(&n); err != nil {
		return false, db.fail("cannot read", err)
	}
	return n > 0, nil
}
