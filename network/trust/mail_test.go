package trust

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"p2pchat/network/wire"
)

func identity(t *testing.T, name string) *Identity {
	t.Helper()
	id, err := LoadIdentity(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func contact(t *testing.T, id *Identity) Contact {
	t.Helper()
	c, cert, err := VerifyCard(id.Card(true, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	if c.ID != id.ID || c.Name != cert.Subject.CommonName {
		t.Fatalf("card of %s says %s %q", id.ID, c.ID, c.Name)
	}
	return c
}

func TestMailboxKeyKeptAndCreatedForOldIdentities(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadIdentity(dir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadIdentity(dir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !first.mailbox.Equal(again.mailbox) {
		t.Error("the mailbox key changed across loads")
	}
	// An identity made before mail was carried gets a mailbox key.
	os.Remove(filepath.Join(dir, mailboxKeyFile))
	old, err := LoadIdentity(dir, "alice")
	if err != nil || old.ID != first.ID || old.mailbox == nil {
		t.Fatalf("identity without a mailbox key: %v", err)
	}
	// A damaged one is an error, not silently replaced.
	os.WriteFile(filepath.Join(dir, mailboxKeyFile), []byte("junk"), 0o600)
	if _, err := LoadIdentity(dir, "alice"); err == nil {
		t.Error("damaged mailbox key: no error")
	}
}

func TestCardVerifies(t *testing.T) {
	alice, mallory := identity(t, "alice"), identity(t, "alice")
	card := alice.Card(false, time.UnixMilli(1700000000000))
	c, _, err := VerifyCard(card)
	if err != nil || c.Reachable || !c.Issued.Equal(time.UnixMilli(1700000000000)) {
		t.Fatalf("alice's card: %+v %v", c, err)
	}
	for _, tc := range []struct {
		name  string
		alter func(*wire.Card)
	}{
		{"another mailbox key", func(c *wire.Card) { c.Mailbox = mallory.Card(false, time.Now()).Mailbox }},
		{"reachable flipped", func(c *wire.Card) { c.Reachable = true }},
		{"issued later", func(c *wire.Card) { c.Issued = c.Issued.Add(time.Hour) }},
		{"another certificate", func(c *wire.Card) { c.Cert = mallory.Cert.Certificate[0] }},
		{"certificate garbage", func(c *wire.Card) { c.Cert = []byte("junk") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := card
			bad.Cert = append([]byte(nil), card.Cert...)
			tc.alter(&bad)
			if _, _, err := VerifyCard(bad); !errors.Is(err, ErrBadMail) {
				t.Errorf("got %v, want ErrBadMail", err)
			}
		})
	}
}

func TestSealedLetterOpensOnlyForItsRecipient(t *testing.T) {
	alice, bob, carol := identity(t, "alice"), identity(t, "bob"), identity(t, "carol")
	impostor := identity(t, "alice")
	l := wire.Letter{From: alice.ID, To: carol.ID, Stream: wire.StreamID{1}, Seq: 3, Low: 1, Sent: time.UnixMilli(1700000000000), Group: "trip", Text: "meet at 8"}
	sealed, err := alice.Seal(contact(t, carol), l)
	if err != nil {
		t.Fatal(err)
	}
	mail := wire.Mail{To: carol.ID, From: alice.ID, Stream: l.Stream, Seq: l.Seq, Sealed: sealed}
	got, err := carol.Open(mail, contact(t, alice))
	if err != nil || got != l {
		t.Fatalf("carol opened %+v, %v; want %+v", got, err, l)
	}

	for _, tc := range []struct {
		name  string
		by    *Identity
		from  Contact
		alter func(*wire.Mail)
	}{
		{"a carrier", bob, contact(t, alice), func(m *wire.Mail) { m.To = bob.ID }},
		{"one byte altered", carol, contact(t, alice), func(m *wire.Mail) { m.Sealed[len(m.Sealed)/2] ^= 1 }},
		{"truncated", carol, contact(t, alice), func(m *wire.Mail) { m.Sealed = m.Sealed[:len(m.Sealed)-1] }},
		{"another number outside", carol, contact(t, alice), func(m *wire.Mail) { m.Seq++ }},
		{"another stream outside", carol, contact(t, alice), func(m *wire.Mail) { m.Stream[0]++ }},
		{"another sender outside", carol, contact(t, impostor), func(m *wire.Mail) { m.From = impostor.ID }},
		{"checked against the wrong key", carol, contact(t, impostor), func(m *wire.Mail) {}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mail
			m.Sealed = append([]byte(nil), sealed...)
			tc.alter(&m)
			if _, err := tc.by.Open(m, tc.from); !errors.Is(err, ErrBadMail) {
				t.Errorf("got %v, want ErrBadMail", err)
			}
		})
	}

	// An impostor who has alice's name but not her key cannot seal as her.
	forged := l
	forged.From = impostor.ID
	sealed, err = impostor.Seal(contact(t, carol), forged)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := carol.Open(wire.Mail{To: carol.ID, From: alice.ID, Stream: l.Stream, Seq: l.Seq, Sealed: sealed}, contact(t, alice)); !errors.Is(err, ErrBadMail) {
		t.Errorf("a letter sealed by an impostor as alice: %v, want ErrBadMail", err)
	}
	if _, err := alice.Seal(contact(t, carol), wire.Letter{From: bob.ID, To: carol.ID}); err == nil {
		t.Error("alice sealed a letter from bob")
	}
}

func TestReceiptVerifies(t *testing.T) {
	alice, carol, mallory := identity(t, "alice"), identity(t, "carol"), identity(t, "carol")
	r := carol.Receipt(alice.ID, wire.StreamID{2}, 7)
	if err := VerifyReceipt(r, contact(t, carol)); err != nil {
		t.Fatal(err)
	}
	forged := mallory.Receipt(alice.ID, wire.StreamID{2}, 7)
	forged.From = carol.ID
	if err := VerifyReceipt(forged, contact(t, carol)); !errors.Is(err, ErrBadMail) {
		t.Errorf("forged receipt: %v", err)
	}
	r.Seq++
	if err := VerifyReceipt(r, contact(t, carol)); !errors.Is(err, ErrBadMail) {
		t.Errorf("altered receipt: %v", err)
	}
}

func BenchmarkSealOpen(b *testing.B) {
	alice, err := LoadIdentity(b.TempDir(), "alice")
	if err != nil {
		b.Fatal(err)
	}
	carol, err := LoadIdentity(b.TempDir(), "carol")
	if err != nil {
		b.Fatal(err)
	}
	ca, _, _ := VerifyCard(alice.Card(true, time.Now()))
	cc, _, _ := VerifyCard(carol.Card(true, time.Now()))
	l := wire.Letter{From: alice.ID, To: carol.ID, Stream: wire.StreamID{1}, Seq: 1, Sent: time.Now(), Text: "x"}
	for b.Loop() {
		sealed, err := alice.Seal(cc, l)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := carol.Open(wire.Mail{To: carol.ID, From: alice.ID, Stream: l.Stream, Seq: 1, Sealed: sealed}, ca); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzOpenMail: whatever a carrier brings, as a card or as sealed mail,
// verifying and opening it fails cleanly or yields what was sealed.
func FuzzOpenMail(f *testing.F) {
	alice, err := LoadIdentity(f.TempDir(), "alice")
	if err != nil {
		f.Fatal(err)
	}
	carol, err := LoadIdentity(f.TempDir(), "carol")
	if err != nil {
		f.Fatal(err)
	}
	from, _, _ := VerifyCard(alice.Card(true, time.Now()))
	to, _, _ := VerifyCard(carol.Card(true, time.Now()))
	l := wire.Letter{From: alice.ID, To: carol.ID, Stream: wire.StreamID{1}, Seq: 1, Sent: time.UnixMilli(1), Text: "hi"}
	sealed, err := alice.Seal(to, l)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(wire.AppendFrame(nil, alice.Card(true, time.UnixMilli(5))), sealed)
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, card, sealed []byte) {
		if fr, err := wire.ParseFrame(card); err == nil {
			if c, ok := fr.(wire.Card); ok {
				VerifyCard(c)
			}
		}
		got, err := carol.Open(wire.Mail{To: carol.ID, From: alice.ID, Stream: l.Stream, Seq: l.Seq, Sealed: sealed}, from)
		if err == nil && got != l {
			t.Fatalf("opened %+v, which alice never sealed", got)
		}
	})
}
