package store

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"p2pchat/network/wire"
)

func openIn(t *testing.T, dir string) *DB {
	t.Helper()
	db, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func texts(ms []Message) []string {
	out := []string{}
	for _, m := range ms {
		out = append(out, m.Text)
	}
	return out
}

func mustWait(t *testing.T, p *Pending) {
	t.Helper()
	if err := p.Wait(); err != nil {
		t.Fatal(err)
	}
}

// What a friend sent is counted per period, in bytes of text, and the
// count survives a reopen; ForgetUsage drops the old periods.
func TestUsageSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	db := openIn(t, dir)
	t0 := time.UnixMilli(1_700_000_000_000)
	s := NewStreamID()
	mustWait(t, db.AddIn("bob", []In{{Stream: s, Seq: 1, Text: "héllo"}, {Stream: s, Seq: 2, Text: "x"}}, t0))
	mustWait(t, db.AddIn("bob", []In{{Stream: s, Seq: 3, Text: "abc"}}, t0))
	mustWait(t, db.AddIn("bob", []In{{Stream: s, Seq: 4, Text: "later"}}, t0.Add(time.Hour)))
	mustWait(t, db.AddIn("carol", []In{{Stream: s, Seq: 1, Text: "not bob"}}, t0))
	db.Close()

	db = openIn(t, dir)
	got, err := db.Usage("bob", t0)
	want := []Period{{Start: t0, Bytes: 6 + 1 + 3}, {Start: t0.Add(time.Hour), Bytes: 5}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("Usage: %v, %v; want %v", got, err, want)
	}
	if got, _ := db.Usage("bob", t0.Add(time.Minute)); !slices.Equal(got, want[1:]) {
		t.Errorf("Usage from a minute on: %v, want %v", got, want[1:])
	}
	mustWait(t, db.ForgetUsage(t0.Add(time.Minute)))
	if got, _ := db.Usage("bob", time.Time{}); !slices.Equal(got, want[1:]) {
		t.Errorf("Usage after ForgetUsage: %v, want %v", got, want[1:])
	}
}

func TestQueueDeliveryShownAndHistorySurviveReopen(t *testing.T) {
	dir := t.TempDir()
	db := openIn(t, dir)
	t0 := time.UnixMilli(1_700_000_000_000)
	var outs []Out
	for _, text := range []string{"one", "two\x00/é", "three"} {
		o, p := db.AddOut("bob", text, t0)
		mustWait(t, p)
		outs = append(outs, o)
	}
	// bob's clock is an hour behind: history still follows arrival.
	in := []In{{Stream: NewStreamID(), Seq: 1, Text: "hi", Sent: t0.Add(-time.Hour)}, {Stream: NewStreamID(), Seq: 5, Text: "yo", Sent: t0.Add(-time.Hour)}}
	mustWait(t, db.AddIn("bob", in, t0))
	mustWait(t, db.MarkDelivered("bob", outs[0].Row))
	if err := db.MarkShown("bob", in[0].Row); err != nil {
		t.Fatal(err)
	}
	if outs[0].Stream != db.Stream() || outs[0].Seq != 1 || outs[2].Seq != 3 {
		t.Errorf("numbered %+v, want 1, 2, 3 in stream %s", outs, db.Stream())
	}
	stream := db.Stream()
	db.Close()

	db = openIn(t, dir)
	if db.Stream() == stream {
		t.Error("a new Open kept the stream")
	}
	if q, _ := db.Queue("bob"); !slices.Equal(texts(q), []string{"two\x00/é", "three"}) {
		t.Errorf("queue %q", texts(q))
	}
	if u, _ := db.Unshown("bob"); !slices.Equal(texts(u), []string{"yo"}) {
		t.Errorf("unshown %q", texts(u))
	}
	if seq, _ := db.Received("bob", in[1].Stream); seq != 5 {
		t.Errorf("received mark %d, want 5", seq)
	}
	h, err := db.History("bob", 4)
	if err != nil || !slices.Equal(texts(h), []string{"two\x00/é", "three", "hi", "yo"}) {
		t.Fatalf("history %q, %v", texts(h), err)
	}
	if o, _ := db.AddOut("bob", "again", t0); o.Seq != 1 {
		t.Errorf("first message of a new stream numbered %d", o.Seq)
	}
}

func TestWritesAreGroupCommitted(t *testing.T) {
	db := openIn(t, t.TempDir())
	before := db.commits.Load()
	const n = 2000
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, p := db.AddOut(fmt.Sprint("friend", i%7), "x", time.Now())
			if err := p.Wait(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	commits := db.commits.Load() - before
	if commits >= n/2 {
		t.Errorf("%d writes took %d commits: not grouped", n, commits)
	}
	t.Logf("%d writes in %d commits", n, commits)
}

func TestLazyWritesRideWithTheNext(t *testing.T) {
	db := openIn(t, t.TempDir())
	o, p := db.AddOut("bob", "x", time.Now())
	mustWait(t, p)
	before := db.commits.Load()
	lazy := db.MarkDelivered("bob", o.Row)
	_, p = db.AddOut("bob", "y", time.Now())
	mustWait(t, p)
	select {
	case <-lazy.Done():
	default:
		t.Fatal("a delivered mark waited although a write went out after it")
	}
	if c := db.commits.Load() - before; c != 1 {
		t.Errorf("%d commits, want the mark and the message in one", c)
	}
	// Alone, it waits at most lazyDelay.
	mustWait(t, db.MarkDelivered("bob", o.Row))
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	openIn(t, dir)
	if _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestFilesAreOwnerOnly(t *testing.T) {
	dir := t.TempDir()
	db := openIn(t, dir)
	_, p := db.AddOut("bob", "x", time.Now())
	mustWait(t, p)
	for _, name := range []string{FileName, FileName + "-wal", lockName} {
		st, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s has mode %v", name, st.Mode().Perm())
		}
	}
}

func TestSchemaVersions(t *testing.T) {
	dir := t.TempDir()
	db := openIn(t, dir)
	var v int
	db.sql.QueryRow(`PRAGMA user_version`).Scan(&v)
	if v != schemaVersion {
		t.Errorf("user_version %d after Open, want %d", v, schemaVersion)
	}
	var mode string
	db.sql.QueryRow(`PRAGMA journal_mode`).Scan(&mode)
	if mode != "wal" {
		t.Errorf("journal_mode %s, want wal", mode)
	}
	db.Close()

	// Every migration runs from every older version: here, from each
	// prefix of the list, on a database built by the migrations before.
	for from := 0; from < schemaVersion; from++ {
		t.Run(fmt.Sprintf("from %d", from), func(t *testing.T) {
			dir := t.TempDir()
			raw, err := sql.Open("sqlite", filepath.Join(dir, FileName))
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < from; i++ {
				if _, err := raw.Exec(migrations[i]); err != nil {
					t.Fatal(err)
				}
			}
			raw.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, from))
			raw.Close()
			db := openIn(t, dir)
			_, p := db.AddOut("bob", "x", time.Now())
			mustWait(t, p)
		})
	}

	// A newer release's database is refused, untouched.
	raw, _ := sql.Open("sqlite", filepath.Join(dir, FileName))
	raw.Exec(fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion+1))
	raw.Close()
	if _, err := Open(dir); !errors.Is(err, ErrNewer) {
		t.Errorf("Open of a newer schema: %v, want ErrNewer", err)
	}
}

func TestDamagedDatabase(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string)
		refuse bool // else SQLite recovers, and what was committed is there
	}{
		{"truncated", func(path string) { os.Truncate(path, 4096+100) }, true},
		{"garbage", func(path string) {
			b := make([]byte, 64<<10)
			for i := range b {
				b[i] = byte(i * 7)
			}
			os.WriteFile(path, b, 0o600)
		}, true},
		{"torn WAL", func(path string) {
			// A write cut short: half a frame at the end of the WAL.
			f, _ := os.OpenFile(path+"-wal", os.O_WRONLY|os.O_APPEND, 0)
			f.Write(make([]byte, 2000))
			f.Close()
		}, false},
		{"garbage WAL", func(path string) { os.WriteFile(path+"-wal", []byte("not a WAL at all, not at all"), 0o600) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			db := openIn(t, dir)
			for i := range 300 {
				_, p := db.AddOut("bob", fmt.Sprintf("message %d with some text to fill pages", i), time.Now())
				mustWait(t, p)
			}
			if tc.refuse {
				// Put everything in the main file, as a checkpoint does.
				db.sql.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
			}
			db.Close()
			tc.damage(filepath.Join(dir, FileName))
			db, err := Open(dir)
			if err == nil {
				defer db.Close()
				var q []Message
				q, err = db.Queue("bob")
				if err == nil && len(q) != 300 {
					t.Errorf("recovered %d of 300 messages", len(q))
				}
			}
			if tc.refuse && !errors.Is(err, ErrDamaged) {
				t.Fatalf("got %v, want an error saying it is damaged", err)
			}
			if !tc.refuse && err != nil {
				t.Fatalf("SQLite did not recover: %v", err)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	db := openIn(t, dir)
	_, p := db.AddOut("bob", "x", time.Now())
	mustWait(t, p)
	if found, err := Check(dir); found != "ok" || err != nil {
		t.Errorf("Check of a sound database: %q, %v", found, err)
	}
}

// expected is testdata/upgrade-v1/expected.json, in part.
type expected map[string]struct {
	Queued  map[string][]string `json:"queued"`
	History map[string][]struct {
		Out       bool   `json:"out"`
		Text      string `json:"text"`
		Delivered bool   `json:"delivered"`
	} `json:"history"`
}

// copyFixture copies a data directory of testdata/upgrade-v1 to a new
// directory.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	from := filepath.Join("..", "..", "..", "testdata", "upgrade-v1", name)
	to := t.TempDir()
	entries, err := os.ReadDir(from)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(to, e.Name()), b, 0o600)
	}
	return to
}

// A data directory written by p2pchat 0.1 (bbolt, an unmerged log segment,
// shown marks) is moved into the database once: the queue, the history
// and what was shown are kept.
func TestUpgradeFromV1(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "testdata", "upgrade-v1", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want expected
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	dir := copyFixture(t, "alice")
	db := openIn(t, dir)
	if db.Upgraded() == 0 {
		t.Fatal("nothing upgraded")
	}
	check := func(db *DB) {
		t.Helper()
		for friend, queued := range want["alice"].Queued {
			q, err := db.Queue(friend)
			if err != nil || !slices.Equal(texts(q), queued) {
				t.Errorf("queue for %s: %q, %v; want %q", friend, texts(q), err, queued)
			}
			for i, m := range q {
				if m.Seq != uint64(i+1) || m.Stream == (wire.StreamID{}) {
					t.Errorf("queued %q goes out as %s/%d, want a new stream from 1", m.Text, m.Stream, m.Seq)
				}
			}
		}
		for friend, hist := range want["alice"].History {
			h, _ := db.History(friend, 100)
			if len(h) != len(hist) {
				t.Fatalf("history with %s: %q", friend, texts(h))
			}
			for i, w := range hist {
				if h[i].Text != w.Text || h[i].Outgoing != w.Out || (w.Out && h[i].Done != w.Delivered) {
					t.Errorf("history with %s, %d: %+v, want %+v", friend, i, h[i], w)
				}
			}
			if u, _ := db.Unshown(friend); len(u) != 0 {
				t.Errorf("shown again after the upgrade: %q", texts(u))
			}
		}
	}
	check(db)
	if _, err := os.Stat(filepath.Join(dir, "p2pchat.db")); !errors.Is(err, os.ErrNotExist) {
		t.Error("the old store is still in place")
	}
	if _, err := os.Stat(filepath.Join(dir, oldDir, "p2pchat.db")); err != nil {
		t.Errorf("the old store was not kept: %v", err)
	}
	db.Close()

	db = openIn(t, dir)
	if db.Upgraded() != 0 {
		t.Error("upgraded twice")
	}
	check(db)
}

// A version 1 database, as 0.2.0 left it, keeps every message through the
// migration to version 2: none has a group, the queue and the marks stay,
// and group messages are recorded after it.
func TestMigrationToGroups(t *testing.T) {
	dir := t.TempDir()
	raw, err := sql.Open("sqlite", filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	stream := NewStreamID()
	for _, q := range []string{
		migrations[0],
		`PRAGMA user_version = 1`,
	} {
		if _, err := raw.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range []struct {
		row      int64
		outgoing bool
		seq      int
		text     string
	}{{1, true, 1, "sent, delivered"}, {2, false, 4, "received, shown"}, {3, true, 2, "sent, queued"}, {4, false, 5, "received, not shown"}} {
		if _, err := raw.Exec(`INSERT INTO messages (row, friend, outgoing, stream, seq, sent, at, text) VALUES (?, 'bob', ?, ?, ?, 1, 1, ?)`, r.row, r.outgoing, stream[:], r.seq, r.text); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := raw.Exec(`INSERT INTO marks (friend, delivered, shown) VALUES ('bob', 1, 2)`); err != nil {
		t.Fatal(err)
	}
	raw.Close()

	db := openIn(t, dir)
	h, err := db.History("bob", 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"sent, delivered", "received, shown", "sent, queued", "received, not shown"}; !slices.Equal(texts(h), want) {
		t.Fatalf("history %q, want %q", texts(h), want)
	}
	for _, m := range h {
		if m.Group != "" {
			t.Errorf("%q has group %q after the migration, want none", m.Text, m.Group)
		}
	}
	if q, _ := db.Queue("bob"); !slices.Equal(texts(q), []string{"sent, queued"}) {
		t.Errorf("queue %q after the migration", texts(q))
	}
	if u, _ := db.Unshown("bob"); !slices.Equal(texts(u), []string{"received, not shown"}) {
		t.Errorf("unshown %q after the migration", texts(u))
	}
	_, p := db.AddGroupOut("bob", "trip", "to the trip", time.Now(), 0)
	mustWait(t, p)
	if q, _ := db.Queue("bob"); len(q) != 2 || q[1].Group != "trip" {
		t.Errorf("queue %+v: want the group message last, with its group", q)
	}
}

// The group of each message, both ways, survives a reopen.
func TestGroupIsRecorded(t *testing.T) {
	dir := t.TempDir()
	db := openIn(t, dir)
	now := time.UnixMilli(1_700_000_000_000)
	for _, g := range []string{"", "trip", wire.AllGroup} {
		_, p := db.AddGroupOut("bob", g, "out "+g, now, 0)
		mustWait(t, p)
		mustWait(t, db.AddIn("bob", []In{{Stream: NewStreamID(), Seq: 1, Group: g, Text: "in " + g, Sent: now}}, now))
	}
	db.Close()
	db = openIn(t, dir)
	h, err := db.History("bob", 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range h {
		got = append(got, m.Text+"|"+m.Group)
	}
	if want := []string{"out |", "in |", "out trip|trip", "in trip|trip", "out all|all", "in all|all"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if q, _ := db.Queue("bob"); len(q) != 3 || q[1].Group != "trip" {
		t.Errorf("queue %+v", q)
	}
	if u, _ := db.Unshown("bob"); len(u) != 3 || u[2].Group != wire.AllGroup {
		t.Errorf("unshown %+v", u)
	}
}

// A group's history has its messages both ways, the copies of one we sent
// as one with who has it, and nothing else.
func TestGroupHistory(t *testing.T) {
	db := openIn(t, t.TempDir())
	now := time.UnixMilli(1_700_000_000_000)
	out := func(friend, group, text string, first int64) Out {
		t.Helper()
		o, p := db.AddGroupOut(friend, group, text, now, first)
		mustWait(t, p)
		return o
	}
	in := func(friend, group, text string) {
		t.Helper()
		mustWait(t, db.AddIn(friend, []In{{Stream: NewStreamID(), Seq: 1, Group: group, Text: text, Sent: now}}, now))
	}
	first := out("bob", "trip", "one", 0)
	in("dave", "trip", "between the copies")
	last := out("carol", "trip", "one", first.Row)
	out("bob", "", "not the trip", 0)
	in("carol", "trip", "two")
	in("bob", wire.AllGroup, "not the trip either")
	out("bob", "trip", "one", 0) // the same words at the same time: another message
	mustWait(t, db.MarkDelivered("carol", last.Row))
	in("bob", "trip", "three")
	show := func(ms []GroupMessage) []string {
		var got []string
		for _, m := range ms {
			if m.Outgoing {
				got = append(got, fmt.Sprintf("us %s to %v, delivered %v", m.Text, m.To, m.Delivered))
			} else {
				got = append(got, m.From+" "+m.Text)
			}
		}
		return got
	}
	for _, tc := range []struct {
		group string
		n     int
		want  []string
	}{
		{"trip", 10, []string{"us one to [bob carol], delivered [carol]", "dave between the copies", "carol two", "us one to [bob], delivered []", "bob three"}},
		{"trip", 2, []string{"us one to [bob], delivered []", "bob three"}},
		{wire.AllGroup, 10, []string{"bob not the trip either"}},
		{"", 10, nil},
		{"nosuch", 10, nil},
	} {
		ms, err := db.GroupHistory(tc.group, tc.n)
		if err != nil {
			t.Fatal(err)
		}
		if got := show(ms); !slices.Equal(got, tc.want) {
			t.Errorf("GroupHistory(%q, %d) = %q, want %q", tc.group, tc.n, got, tc.want)
		}
	}
}
