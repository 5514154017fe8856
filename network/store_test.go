package network

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"p2pchat/network/internal/store"
)

// openStoreIn opens the store in dir, closed when the test ends unless the
// test closes it first.
func openStoreIn(t *testing.T, dir string) *store.DB {
	t.Helper()
	db, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// copyDir copies the files of dir (not subdirectories) into a new
// directory: a backup, taken while nothing has the store open.
func copyDir(t *testing.T, dir string) string {
	t.Helper()
	to := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(to, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return to
}

// A database deleted, moved aside or restored from an older copy, on
// either side, never makes the receiver drop a message as a duplicate or
// wait for one: the sender's messages go under a new stream at every start.
func TestResetOrRestoredDatabaseLosesNothing(t *testing.T) {
	for _, tc := range []struct {
		name    string
		side    string // whose database is replaced
		restore bool   // by a copy taken after the first message; else by a new one
	}{
		{"sender's database new", "alice", false},
		{"sender's database restored", "alice", true},
		{"receiver's database new", "bob", false},
		{"receiver's database restored", "bob", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkNoLeaks(t)
			tab := testTable(t, "alice", "bob")
			ids := map[string]*Identity{"alice": newIdentity(t, "alice"), "bob": newIdentity(t, "bob")}
			dirs := map[string]string{"alice": t.TempDir(), "bob": t.TempDir()}
			start := func(name string) (*Node, *store.DB) {
				db := openStoreIn(t, dirs[name])
				return startNode(t, tab, name, withIdentity(ids[name]), withStore(db)), db
			}
			exchange := func(alice, bob *Node, texts ...string) {
				t.Helper()
				for _, text := range texts {
					seq := send(t, alice, "bob", text)
					if m := waitFor[MessageReceived](t, bob, nil); m.Text != text {
						t.Fatalf("bob showed %q, want %q", m.Text, text)
					}
					waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == seq })
				}
			}
			alice, aliceDB := start("alice")
			bob, bobDB := start("bob")
			exchange(alice, bob, "one")
			var backup string
			if tc.restore {
				alice.Close()
				bob.Close()
				aliceDB.Close()
				bobDB.Close()
				backup = copyDir(t, dirs[tc.side])
				alice, aliceDB = start("alice")
				bob, bobDB = start("bob")
			}
			exchange(alice, bob, "two", "three")
			alice.Close()
			bob.Close()
			aliceDB.Close()
			bobDB.Close()
			if tc.restore {
				dirs[tc.side] = backup
			} else {
				dirs[tc.side] = t.TempDir()
			}
			alice, _ = start("alice")
			bob, _ = start("bob")
			exchange(alice, bob, "four", "five")
			assertNo[MessageReceived](t, bob)
		})
	}
}

// smallDisk mounts a tmpfs of size bytes for the test and returns its
// path; it needs root, which CI has.
func smallDisk(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("CI runs as root and must run this test")
		}
		t.Skip("mounting a small filesystem needs root (CI runs this)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// fill writes a file in dir until the filesystem is full, and returns its
// path.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			return path
		}
	}
}

// On a full disk, a message is refused with one event that says so, is
// never sent later, and sending works again once there is space, without a
// restart.
func TestFullDiskOnTheSendingSide(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	disk := smallDisk(t, 2<<20)
	db := openStoreIn(t, disk)
	alice := startNode(t, tab, "alice", withStore(db))
	bob := startNode(t, tab, "bob")
	seq := send(t, alice, "bob", "before")
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == seq })
	waitFor[MessageReceived](t, bob, nil)

	filler := fill(t, disk)
	// Until a write fails, a message goes out while it is recorded; the
	// first one that fails may have reached bob. From then on nothing
	// goes out before it is recorded.
	var failed MessageFailed
	for i := 0; ; i++ {
		send(t, alice, "bob", fmt.Sprintf("filling %d", i))
		ev := waitFor(t, alice, func(ev Event) bool {
			switch ev.(type) {
			case MessageDelivered, MessageFailed:
				return true
			}
			return false
		})
		if f, ok := ev.(MessageFailed); ok {
			failed = f
			break
		}
	}
	if !strings.Contains(failed.Err.Error(), "no space left on device") {
		t.Errorf("failure reported as %q", failed.Err)
	}
	seq = send(t, alice, "bob", "while full")
	f := waitFor(t, alice, func(e MessageFailed) bool { return e.Seq == seq })
	if f.Written {
		t.Error("a message went out while the store was failing")
	}

	os.Remove(filler)
	seq = send(t, alice, "bob", "after")
	waitFor(t, alice, func(e MessageDelivered) bool { return e.Seq == seq })
	for {
		m := waitFor[MessageReceived](t, bob, nil)
		if m.Text == "after" {
			break
		}
		if !strings.HasPrefix(m.Text, "filling") {
			t.Errorf("bob showed %q, which was never sent", m.Text)
		}
	}
	if st := alice.Status()[0]; st.Pending != 0 {
		t.Errorf("%d messages wait after the failure, want none", st.Pending)
	}
	q, _ := db.Queue("bob")
	for _, m := range q {
		if m.Text != "before" && m.Text != "after" { // delivered, marked soon
			t.Errorf("the store kept %q, which failed, to send later", m.Text)
		}
	}
}

// On a full disk, a message received is not acknowledged, so its sender
// keeps it; the person sees one line, and it is shown once space returns.
func TestFullDiskOnTheReceivingSide(t *testing.T) {
	checkNoLeaks(t)
	tab := testTable(t, "alice", "bob")
	disk := smallDisk(t, 2<<20)
	alice := startNode(t, tab, "alice")
	bob := startNode(t, tab, "bob", withStore(openStoreIn(t, disk)))
	filler := fill(t, disk)
	for i := range 3 {
		send(t, alice, "bob", fmt.Sprintf("while full %d", i))
	}
	failed := waitFor[StoreFailed](t, bob, nil)
	if !strings.Contains(failed.Err.Error(), "no space left on device") {
		t.Errorf("failure reported as %q", failed.Err)
	}
	if st := alice.Status()[0]; st.Pending != 3 {
		t.Errorf("alice has %d messages waiting, want all 3", st.Pending)
	}
	os.Remove(filler)
	waitFor[StoreRecovered](t, bob, nil)
	got := receiveTexts(t, bob, 3)
	if want := numbered("while full", 0, 2); !slices.Equal(got, want) {
		t.Errorf("bob showed %q, want %q", got, want)
	}
	assertNo[StoreFailed](t, bob)
}
