package store

import (
	"errors"
	"testing"
	"time"

	"p2pchat/network/wire"
)

func TestCarriedMailBudgetsAndExpiry(t *testing.T) {
	dir := t.TempDir()
	db := openIn(t, dir)
	now := time.Now()
	stream := wire.StreamID{7}
	copyOf := func(sender string, seq uint64, size int, expires time.Time) Carried {
		return Carried{Sender: sender, Recipient: "carol", Stream: stream, Seq: seq, Expires: expires, Mail: make([]byte, size)}
	}
	budget := Budget{Messages: 3, Bytes: 1000}
	for seq := uint64(1); seq <= 3; seq++ {
		mustWait(t, db.AddCarried(copyOf("alice", seq, 100, now.Add(time.Hour)), budget))
	}
	mustWait(t, db.AddCarried(copyOf("alice", 3, 100, now.Add(time.Hour)), Budget{Messages: 4, Bytes: 1000})) // the same copy again: held once
	if err := db.AddCarried(copyOf("alice", 4, 100, now.Add(time.Hour)), budget).Wait(); !errors.Is(err, ErrBudget) {
		t.Errorf("a fourth message over a budget of 3: %v, want ErrBudget", err)
	}
	if err := db.AddCarried(copyOf("dave", 1, 1001, now.Add(time.Hour)), budget).Wait(); !errors.Is(err, ErrBudget) {
		t.Errorf("1001 bytes over a budget of 1000: %v, want ErrBudget", err)
	}
	mustWait(t, db.AddCarried(copyOf("dave", 1, 10, now.Add(-time.Second)), budget)) // expired already
	if db.LastErr() != nil {
		t.Errorf("a refusal over budget counted as a failed write: %v", db.LastErr())
	}

	got, err := db.CarriedFor("carol", now)
	if err != nil || len(got) != 3 || got[0].Seq != 1 || got[2].Seq != 3 || got[0].Sender != "alice" {
		t.Fatalf("carried for carol: %+v, %v; want alice's 1 to 3", got, err)
	}
	mustWait(t, db.DropCarried("alice", "carol", stream, 2))
	mustWait(t, db.Expire(now))
	db.Close()
	db = openIn(t, dir)
	got, _ = db.CarriedFor("carol", now)
	if len(got) != 2 || got[0].Seq != 1 || got[1].Seq != 3 {
		t.Errorf("after a drop, an expiry and a reopen: %+v", got)
	}
	if n, _ := db.CarriedCounts(); n["carol"] != 2 {
		t.Errorf("counts %v", n)
	}
}

func TestReceiptsCardsAndGaps(t *testing.T) {
	db := openIn(t, t.TempDir())
	stream := wire.StreamID{9}
	r := Receipt{Sender: "alice", Recipient: "carol", Stream: stream, Seq: 5, Receipt: []byte("signed")}
	mustWait(t, db.AddReceipt(r, time.Now().Add(time.Hour)))
	mustWait(t, db.AddReceipt(r, time.Now().Add(time.Hour)))
	if got, err := db.ReceiptsFor("alice"); err != nil || len(got) != 1 || got[0].Seq != 5 {
		t.Fatalf("receipts for alice: %+v, %v", got, err)
	}
	mustWait(t, db.DropReceipt("alice", "carol", stream, 5))
	if got, _ := db.ReceiptsFor("alice"); len(got) != 0 {
		t.Errorf("receipt not dropped: %+v", got)
	}

	mustWait(t, db.PutCard("carol", []byte("old")))
	mustWait(t, db.PutCard("carol", []byte("new")))
	if cards, err := db.Cards(); err != nil || string(cards["carol"]) != "new" {
		t.Errorf("cards %q, %v", cards, err)
	}

	// Message 5 came ahead of 3 and 4, which come late.
	mustWait(t, db.AddInGaps("alice", []In{{Stream: stream, Seq: 5, Text: "five", Sent: time.Now()}}, []Gap{{Stream: stream, From: 3, To: 4}}, time.Now()))
	for seq, want := range map[uint64]bool{2: false, 3: true, 4: true, 5: false} {
		if got, err := db.Missing("alice", stream, seq); err != nil || got != want {
			t.Errorf("missing %d: %v, %v; want %v", seq, got, err, want)
		}
	}
	mustWait(t, db.AddInGaps("alice", []In{{Stream: stream, Seq: 3, Text: "three", Sent: time.Now(), Late: true}}, nil, time.Now()))
	if got, _ := db.Missing("alice", stream, 3); got {
		t.Error("3 came, and is still missing")
	}
	if last, _ := db.Received("alice", stream); last != 5 {
		t.Errorf("received mark %d after a late 3, want 5", last)
	}
	if err := db.AddInGaps("alice", []In{{Stream: stream, Seq: 100000, Text: "x", Sent: time.Now()}}, []Gap{{Stream: stream, From: 6, To: 99999}}, time.Now()).Wait(); err == nil {
		t.Error("a gap of 99,994 recorded")
	}
}
