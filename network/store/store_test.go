package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func openTemp(t *testing.T) (*DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "p2pchat.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func TestQueueDeliveryAndHistorySurviveReopen(t *testing.T) {
	db, path := openTemp(t)
	t0 := time.UnixMilli(1_700_000_000_000)
	err := db.Apply(
		AppendOut{Friend: "bob", Seq: 1, Text: "one", Sent: t0},
		AppendOut{Friend: "bob", Seq: 2, Text: "two\x00/é", Sent: t0.Add(time.Second)},
		AppendIn{Friend: "bob", Seq: 7, Text: "hi", Sent: t0, At: t0.Add(1500 * time.Millisecond)},
		AppendOut{Friend: "carol", Seq: 1, Text: "c", Sent: t0},
		MarkDelivered{Friend: "bob", Seq: 1},
	)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path); err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	q, err := db.Queue("bob")
	if err != nil || len(q) != 1 || q[0].Seq != 2 || q[0].Text != "two\x00/é" {
		t.Fatalf("bob's queue = %+v, %v; want only seq 2", q, err)
	}
	out, in, err := db.LastSeq("bob")
	if err != nil || out != 2 || in != 7 {
		t.Errorf("LastSeq(bob) = %d, %d, %v; want 2, 7", out, in, err)
	}
	if out, in, _ := db.LastSeq("nobody"); out != 0 || in != 0 {
		t.Errorf("LastSeq(nobody) = %d, %d", out, in)
	}
	h, err := db.History("bob", 10)
	if err != nil {
		t.Fatal(err)
	}
	got := texts(h)
	if strings.Join(got, "|") != "one|two\x00/é|hi" {
		t.Errorf("history order: %q", got)
	}
	if !h[0].Outgoing || !h[0].Delivered || h[1].Delivered || h[2].Outgoing {
		t.Errorf("history states: %+v", h)
	}
	if h, _ := db.History("bob", 2); len(h) != 2 || h[1].Text != "hi" {
		t.Errorf("last 2: %+v", h)
	}
}

func TestGroupCommit(t *testing.T) {
	db, _ := openTemp(t)
	const n = 2000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- db.Apply(AppendOut{Friend: "bob", Seq: uint64(i + 1), Text: "x", Sent: time.Now()})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if c := db.syncs.Load(); c >= n/4 {
		t.Errorf("%d writes took %d syncs; want them batched", n, c)
	}
	if q, _ := db.Queue("bob"); len(q) != n {
		t.Errorf("queue holds %d, want %d", len(q), n)
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	_, path := openTemp(t)
	if _, err := Open(path); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open: %v, want ErrLocked", err)
	}
}

func TestCorruptDatabaseIsRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		corrupt func(t *testing.T, path string)
	}{
		{"garbage file", func(t *testing.T, path string) {
			os.WriteFile(path, []byte(strings.Repeat("not a database ", 1000)), 0o600)
		}},
		{"truncated", func(t *testing.T, path string) {
			db, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			db.Apply(AppendOut{Friend: "bob", Seq: 1, Text: "x"})
			db.Close()
			os.Truncate(path, 100)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p2pchat.db")
			tc.corrupt(t, path)
			db, err := Open(path)
			if err == nil {
				db.Close()
				t.Fatal("opened a corrupt database")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "corrupt or unreadable") {
				t.Errorf("error %q does not name the file and the problem", err)
			}
		})
	}
}

func TestFileIsOwnerOnly(t *testing.T) {
	_, path := openTemp(t)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
}

func TestShownMarks(t *testing.T) {
	db, path := openTemp(t)
	err := db.Apply(
		AppendIn{Friend: "bob", Seq: 1, Text: "a"},
		AppendIn{Friend: "bob", Seq: 2, Text: "b"},
		AppendIn{Friend: "bob", Seq: 3, Text: "c"},
	)
	if err != nil {
		t.Fatal(err)
	}
	// A fresh database with no marks yet: nothing received before counts
	// as unshown only if it came after the log was created.
	if err := db.MarkShown("bob", 1); err != nil {
		t.Fatal(err)
	}
	db.Close()
	// A torn last line, as a crash in mid-write leaves it.
	f, _ := os.OpenFile(path+".shown", os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("bo") // a mark cut short: ignored; a cut number is a smaller, still true, mark
	f.Close()

	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	un, err := db.Unshown("bob")
	if err != nil || len(un) != 2 || un[0].Text != "b" || un[1].Text != "c" {
		t.Fatalf("unshown = %+v, %v; want b and c", un, err)
	}
	db.MarkShown("bob", 3)
	if un, _ := db.Unshown("bob"); len(un) != 0 {
		t.Errorf("after marking: %+v", un)
	}
	if st, err := os.Stat(path + ".shown"); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("shown log: %v, mode %v", err, st.Mode().Perm())
	}
}

func TestNoShownLogMeansAllShown(t *testing.T) {
	db, path := openTemp(t)
	db.Apply(AppendIn{Friend: "bob", Seq: 5, Text: "old"})
	db.Close()
	os.Remove(path + ".shown")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if un, _ := db.Unshown("bob"); len(un) != 0 {
		t.Errorf("without a log, %d old messages count as unshown", len(un))
	}
}

func TestHistoryKeepsOrderWithinAMillisecond(t *testing.T) {
	db, _ := openTemp(t)
	at := time.UnixMilli(1_700_000_000_000)
	db.Apply(
		AppendIn{Friend: "bob", Seq: 1, Text: "one", At: at},
		AppendIn{Friend: "bob", Seq: 2, Text: "two", At: at},
		AppendIn{Friend: "bob", Seq: 3, Text: "three", At: at},
		AppendOut{Friend: "bob", Seq: 1, Text: "a", Sent: at},
		AppendOut{Friend: "bob", Seq: 2, Text: "b", Sent: at},
	)
	h, err := db.History("bob", 10)
	if err != nil {
		t.Fatal(err)
	}
	if got := texts(h); strings.Join(got, " ") != "a b one two three" {
		t.Errorf("history %q: want each direction in sequence order", got)
	}
}

// texts returns the texts of rs, in order.
func texts(rs []Record) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Text)
	}
	return out
}
