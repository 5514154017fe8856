package legacy

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// writeOld writes an old store at path: bbolt with the given buckets'
// records, then one log segment of records.
func writeOld(t *testing.T, path string, out, in map[uint64]string, delivered uint64, segment []op) {
	t.Helper()
	b, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx *bolt.Tx) error {
		for name, recs := range map[string]map[uint64]string{"out": out, "in": in} {
			top, _ := tx.CreateBucketIfNotExists([]byte(name))
			fb, _ := top.CreateBucketIfNotExists([]byte("bob"))
			for seq, text := range recs {
				v := binary.BigEndian.AppendUint64(nil, uint64(1000*seq))
				v = binary.BigEndian.AppendUint64(v, uint64(1000*seq+1))
				fb.Put(binary.BigEndian.AppendUint64(nil, seq), append(v, text...))
			}
		}
		d, _ := tx.CreateBucketIfNotExists([]byte("delivered"))
		return d.Put([]byte("bob"), binary.BigEndian.AppendUint64(nil, delivered))
	})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	seg := append([]byte(segmentMagic), appendRecord(nil, segment)...)
	if err := os.WriteFile(path+".wal.000002", seg, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestReadMergesBoltLogAndShownMarks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p2pchat.db")
	writeOld(t, path,
		map[uint64]string{1: "out-1", 2: "out-2"},
		map[uint64]string{1: "in-1"},
		1,
		[]op{
			appendOut{Friend: "bob", Seq: 3, Text: "out-3", Sent: time.UnixMilli(3000)},
			appendIn{Friend: "bob", Seq: 2, Text: "in-2", Sent: time.UnixMilli(2500), At: time.UnixMilli(3500)},
			reserve{Friend: "bob", Seq: 4096},
		})
	os.WriteFile(path+".shown", []byte("bob 1\n"), 0o600)
	// A torn append at the end of the last segment: zeros, as ext4 can
	// leave after a power loss.
	f, _ := os.OpenFile(path+".wal.000002", os.O_WRONLY|os.O_APPEND, 0)
	f.Write(make([]byte, 40))
	f.Close()

	msgs, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		text             string
		delivered, shown bool
	}
	var got []row
	for _, m := range msgs {
		got = append(got, row{m.Text, m.Delivered, m.Shown})
	}
	want := []row{{"out-1", true, false}, {"in-1", false, true}, {"out-2", false, false}, {"out-3", false, false}, {"in-2", false, false}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("message %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if n := len(Files(path)); n != 3 {
		t.Errorf("Files = %v, want the database, the shown marks and one segment", Files(path))
	}
}

func TestReadRefusesDamage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(path string)
	}{
		{"truncated database", func(path string) { os.Truncate(path, 4096*2+100) }},
		{"garbage database", func(path string) { os.WriteFile(path, bytes.Repeat([]byte("x"), 20000), 0o600) }},
		{"not a segment", func(path string) { os.WriteFile(path+".wal.000002", []byte("something else entirely"), 0o600) }},
		{"torn earlier segment", func(path string) {
			seg := append([]byte(segmentMagic), appendRecord(nil, []op{markDelivered{Friend: "bob", Seq: 1}})...)
			os.WriteFile(path+".wal.000001", seg[:len(seg)-1], 0o600)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "p2pchat.db")
			out := map[uint64]string{}
			for i := uint64(1); i <= 200; i++ {
				out[i] = string(bytes.Repeat([]byte("m"), 200))
			}
			writeOld(t, path, out, nil, 0, []op{markDelivered{Friend: "bob", Seq: 1}})
			tc.damage(path)
			if _, err := Read(path); err == nil {
				t.Fatal("read a damaged store without an error")
			}
		})
	}
}

func FuzzDecodeOps(f *testing.F) {
	f.Add(appendRecord(nil, []op{
		appendOut{Friend: "bob", Seq: 1, Text: "hi", Sent: time.UnixMilli(1)},
		appendIn{Friend: "bob", Seq: 2, Text: "yo", Sent: time.UnixMilli(2), At: time.UnixMilli(3)},
		markDelivered{Friend: "bob", Seq: 1},
		reserve{Friend: "bob", Seq: 4096},
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
