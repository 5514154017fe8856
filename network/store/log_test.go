package store

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestLogIsCheckpointedIntoBolt(t *testing.T) {
	db, path := openTemp(t)
	const n = checkpointOps + 100
	for i := 1; i <= n; i++ {
		db.Append(AppendOut{Friend: "bob", Seq: uint64(i), Text: strconv.Itoa(i), Sent: time.Now()})
	}
	// Reads are right at every moment: before, during and after the
	// checkpoint the append above set off.
	var wg sync.WaitGroup
	wg.Go(func() {
		for db.checkpoints.Load() == 0 {
			// Before or after the delivered mark below.
			q, err := db.Queue("bob")
			if err != nil || len(q) == 0 || len(q) != n-int(q[0].Seq)+1 || q[len(q)-1].Seq != n || (q[0].Seq != 1 && q[0].Seq != 11) {
				t.Errorf("queue during the checkpoint: %d records, %v", len(q), err)
				return
			}
		}
	})
	if err := db.Sync(db.Append(MarkDelivered{Friend: "bob", Seq: 10})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a checkpoint", func() bool { return db.checkpoints.Load() > 0 })
	wg.Wait()
	q, err := db.Queue("bob")
	if err != nil || len(q) != n-10 || q[0].Seq != 11 {
		t.Fatalf("queue after the checkpoint: %d records, %v", len(q), err)
	}
	nums, _ := segments(path)
	if len(nums) != 1 {
		t.Errorf("log segments after a checkpoint: %v, want only the new one", nums)
	}
	if h, _ := db.History("bob", 3); len(h) != 3 || h[2].Seq != n || h[0].Delivered {
		t.Errorf("history: %+v", h)
	}
}

func TestReserve(t *testing.T) {
	db, path := openTemp(t)
	db.Apply(Reserve{Friend: "bob", Seq: 100}, Reserve{Friend: "bob", Seq: 4096})
	if r, err := db.Reserved("bob"); r != 4096 || err != nil {
		t.Errorf("Reserved = %d, %v; want 4096", r, err)
	}
	db.Close()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if r, _ := db.Reserved("bob"); r != 4096 {
		t.Errorf("after reopening, Reserved = %d; want 4096", r)
	}
	// A release lowers it.
	db.Apply(Reserve{Friend: "bob", Seq: 7})
	if r, _ := db.Reserved("bob"); r != 7 {
		t.Errorf("after a release, Reserved = %d; want 7", r)
	}
	if r, _ := db.Reserved("carol"); r != 0 {
		t.Errorf("Reserved(carol) = %d", r)
	}
}

func TestSyncCoversEarlierAppends(t *testing.T) {
	db, _ := openTemp(t)
	first := db.Append(AppendIn{Friend: "bob", Seq: 1, Text: "a"})
	second := db.Append(AppendIn{Friend: "bob", Seq: 2, Text: "b"})
	if err := db.Sync(second); err != nil {
		t.Fatal(err)
	}
	db.mu.Lock()
	durable := db.durable
	db.mu.Unlock()
	if durable < uint64(first) {
		t.Errorf("durable up to %d after syncing %d; %d came before it", durable, second, first)
	}
}

// TestLogSurvivesAKill kills a process that writes as fast as it can, in
// the middle of checkpoints, and finds every write it was told was durable.
func TestLogSurvivesAKill(t *testing.T) {
	if path := os.Getenv("P2PCHAT_STORE_CHILD"); path != "" {
		writeUntilKilled(path)
		return
	}
	for round := range 3 {
		path := t.TempDir() + "/p2pchat.db"
		cmd := exec.Command(os.Args[0], "-test.run=^TestLogSurvivesAKill$")
		cmd.Env = append(os.Environ(), "P2PCHAT_STORE_CHILD="+path)
		out, _ := cmd.Output()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("child: %v\n%s", cmd.ProcessState, out)
		}
		var acked int
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if n, err := strconv.Atoi(strings.TrimPrefix(sc.Text(), "durable ")); err == nil {
				acked = n
			}
		}
		db, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		q, err := db.Queue("bob")
		db.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(q) < acked {
			t.Fatalf("round %d: %d messages durable before the kill, %d after it", round, acked, len(q))
		}
		for i, r := range q {
			if r.Seq != uint64(i+1) || r.Text != fmt.Sprint(i+1) {
				t.Fatalf("round %d: record %d is %+v", round, i, r)
			}
		}
		t.Logf("round %d: %d durable, %d found", round, acked, len(q))
	}
}

func writeUntilKilled(path string) {
	db, err := Open(path)
	if err != nil {
		fmt.Println(err)
		os.Exit(1)
	}
	kill := checkpointOps + int(time.Now().UnixNano()%checkpointOps)
	for i := 1; ; i++ {
		tk := db.Append(AppendOut{Friend: "bob", Seq: uint64(i), Text: strconv.Itoa(i)})
		if i%64 == 0 {
			if err := db.Sync(tk); err != nil {
				fmt.Println(err)
				os.Exit(1)
			}
			fmt.Printf("durable %d\n", i)
		}
		if i == kill {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
}

func TestDamagedLog(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string, first, second int)
		refuse bool
	}{
		{"torn last record", func(path string, _, second int) {
			appendTo(segmentPath(path, second), appendRecord(nil, []Op{AppendOut{Friend: "bob", Seq: 3, Text: "c"}})[:9])
		}, false},
		{"bad checksum at the end", func(path string, _, second int) {
			rec := appendRecord(nil, []Op{AppendOut{Friend: "bob", Seq: 3, Text: "c"}})
			rec[len(rec)-1] ^= 1
			appendTo(segmentPath(path, second), rec)
		}, false},
		{"damage in an earlier segment", func(path string, first, _ int) {
			rec := appendRecord(nil, []Op{AppendOut{Friend: "bob", Seq: 3, Text: "c"}})
			appendTo(segmentPath(path, first), rec[:len(rec)-1])
		}, true},
		{"a valid checksum over nonsense", func(path string, _, second int) {
			payload := []byte{99, 3, 'b', 'o', 'b', 1}
			rec := appendRecord(nil, []Op{rawOp(payload)})
			appendTo(segmentPath(path, second), rec)
		}, true},
		{"not a log", func(path string, _, second int) {
			os.WriteFile(segmentPath(path, second), []byte("something else entirely"), 0o600)
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := t.TempDir() + "/p2pchat.db"
			db, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			db.Apply(AppendOut{Friend: "bob", Seq: 1, Text: "a"}, AppendOut{Friend: "bob", Seq: 2, Text: "b"})
			// Leave the log as a crash would: records in segment 1, and
			// an empty segment 2.
			db.mu.Lock()
			db.closed = true
			db.mu.Unlock()
			close(db.quit)
			db.wg.Wait()
			db.seg.Close()
			db.bolt.Close()
			db.shown.close()
			f, _ := createSegment(path, 2)
			f.Close()
			tc.damage(path, 1, 2)

			db, err = Open(path)
			if tc.refuse {
				if err == nil {
					db.Close()
					t.Fatal("opened a damaged log")
				}
				if !strings.Contains(err.Error(), "corrupt or unreadable") || !strings.Contains(err.Error(), ".wal.") {
					t.Errorf("error %q does not name the segment and the problem", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if q, _ := db.Queue("bob"); len(q) != 2 || q[1].Text != "b" {
				t.Errorf("queue after a torn write: %+v", q)
			}
		})
	}
}

type rawOp []byte

func (r rawOp) encode(b []byte) []byte { return append(b, r...) }
func (r rawOp) apply(*bolt.Tx) error   { return nil }

func appendTo(name string, b []byte) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		panic(err)
	}
	f.Write(b)
	f.Close()
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func FuzzDecodeOps(f *testing.F) {
	f.Add(appendRecord(nil, []Op{
		AppendOut{Friend: "bob", Seq: 1, Text: "hi", Sent: time.UnixMilli(1)},
		AppendIn{Friend: "bob", Seq: 2, Text: "yo", Sent: time.UnixMilli(2), At: time.UnixMilli(3)},
		MarkDelivered{Friend: "bob", Seq: 1},
		Reserve{Friend: "bob", Seq: 4096},
	})[8:])
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, payload []byte) {
		// The same bytes as a whole segment: damage or a torn end, never a
		// panic.
		readSegment(bytes.NewReader(append([]byte(segmentMagic), payload...)))
		ops, err := decodeOps(payload)
		if err != nil {
			return
		}
		// What decodes encodes back to the same bytes.
		again := appendRecord(nil, ops)[8:]
		if back, err := decodeOps(again); err != nil || len(back) != len(ops) {
			t.Fatalf("re-encoded %v: %v, %d ops", ops, err, len(back))
		}
	})
}
