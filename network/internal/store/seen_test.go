package store

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestLastSeenSurvivesReopenAndNeverGoesBack(t *testing.T) {
	t0 := time.UnixMilli(1_700_000_000_000)
	dir := t.TempDir()
	db := openIn(t, dir)
	for _, tc := range []struct {
		friend string
		at     time.Time
	}{
		{"bob", t0},
		{"carol", t0.Add(time.Hour)},
		{"bob", t0.Add(time.Minute)},
		{"bob", t0.Add(-time.Hour)}, // an older time never replaces a newer one
	} {
		mustWait(t, db.SetLastSeen(tc.friend, tc.at))
	}
	db.Close()

	db = openIn(t, dir)
	seen, err := db.LastSeen()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"bob": t0.Add(time.Minute), "carol": t0.Add(time.Hour)}
	if len(seen) != len(want) {
		t.Errorf("last seen %v, want %v", seen, want)
	}
	for friend, at := range want {
		if !seen[friend].Equal(at) {
			t.Errorf("%s last seen %v, want %v", friend, seen[friend], at)
		}
	}
}

func TestHasHistory(t *testing.T) {
	db := openIn(t, t.TempDir())
	_, p := db.AddOut("bob", "hi", time.Now())
	mustWait(t, p)
	mustWait(t, db.AddIn("carol", []In{{Stream: NewStreamID(), Seq: 1, Text: "yo", Sent: time.Now()}}, time.Now()))
	for _, tc := range []struct {
		friend string
		want   bool
	}{{"bob", true}, {"carol", true}, {"dave", false}} {
		got, err := db.HasHistory(tc.friend)
		if err != nil || got != tc.want {
			t.Errorf("HasHistory(%s) = %v, %v; want %v", tc.friend, got, err, tc.want)
		}
	}
}

// The migration that adds last_seen keeps what the database held.
func TestLastSeenMigrationKeepsMessages(t *testing.T) {
	dir := t.TempDir()
	raw, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	before := slices.IndexFunc(migrations, func(m string) bool { return strings.Contains(m, "CREATE TABLE last_seen") })
	if before < 0 {
		t.Fatal("no migration creates last_seen")
	}
	for _, m := range migrations[:before] {
		if _, err := raw.Exec(m); err != nil {
			t.Fatal(err)
		}
	}
	stream := NewStreamID()
	if _, err := raw.Exec(`INSERT INTO messages (row, friend, outgoing, stream, seq, sent, at, text) VALUES (1, 'bob', 1, ?, 1, 0, 0, 'queued before')`, stream[:]); err != nil {
		t.Fatal(err)
	}
	raw.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, before))
	raw.Close()

	db := openIn(t, dir)
	var v int
	db.sql.QueryRow(`PRAGMA user_version`).Scan(&v)
	if v != schemaVersion {
		t.Errorf("user_version %d, want %d", v, schemaVersion)
	}
	if q, err := db.Queue("bob"); err != nil || len(q) != 1 || q[0].Text != "queued before" {
		t.Errorf("queue after the migration %q, %v; want the message queued before", texts(q), err)
	}
	if seen, err := db.LastSeen(); err != nil || len(seen) != 0 {
		t.Errorf("last seen after the migration %v, %v; want none", seen, err)
	}
	mustWait(t, db.SetLastSeen("bob", time.Now()))
}
