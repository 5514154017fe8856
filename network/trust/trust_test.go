package trust

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestIdentitySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadIdentity(dir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	again, err := LoadIdentity(dir, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if first.ID != again.ID {
		t.Errorf("ID changed across loads: %s, then %s", first.ID, again.ID)
	}
	for _, f := range []string{identityKeyFile, identityCertFile, mailboxKeyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	// A key file made readable by others is tightened again.
	os.Chmod(filepath.Join(dir, identityKeyFile), 0o644)
	if _, err := LoadIdentity(dir, "alice"); err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, identityKeyFile)); st.Mode().Perm() != 0o600 {
		t.Errorf("key file left at %v", st.Mode().Perm())
	}
	// A half-present identity is an error, not silently replaced.
	os.Remove(filepath.Join(dir, identityCertFile))
	if _, err := LoadIdentity(dir, "alice"); err == nil {
		t.Error("key without certificate: no error")
	}
}

func TestIDText(t *testing.T) {
	first, err := LoadIdentity(t.TempDir(), "x")
	if err != nil {
		t.Fatal(err)
	}
	id := first.ID
	s := id.String()
	if len(s) != 55 || strings.ContainsAny(s, " \t") || strings.Count(s, "-") != 3 {
		t.Errorf("ID text %q: want 52 characters in 4 dash-joined groups", s)
	}
	for _, in := range []string{s, strings.ToLower(s), strings.ReplaceAll(s, "-", "")} {
		got, err := ParseID(in)
		if err != nil || got != id {
			t.Errorf("ParseID(%q) = %s, %v", in, got, err)
		}
	}
	// A fixed ID, so that every spelling below exists in it.
	const known = "CUPXJ2B4LDOVT-VZEPCSCOQ5I5F-PI7HK25LEENMM-BQJEPGFCLWGOA"
	if _, err := ParseID(known); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "ABC", s + "A", strings.Replace(s, s[:1], "1", 1),
		strings.Repeat("A", 52),                  // the zero ID
		known[:len(known)-1] + "B",               // another last character: the same bytes
		strings.Replace(known, "S", "ſ", 1),      // folds to S, is not ASCII
		strings.Replace(known, "I", "ı", 1),      // folds to I
		strings.Replace(known, "C", "\u216d", 1), // Roman numeral one hundred
	} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q): no error", bad)
		}
	}
}

func TestKnownPeersFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "known_peers")
	os.WriteFile(bad, []byte("# ok\nbob NOT-AN-ID\n"), 0o600)
	if _, err := LoadKnownPeers(bad); err == nil || !strings.HasPrefix(err.Error(), bad+":2: bad ID") {
		t.Errorf("got %v, want %s:2: bad ID", err, bad)
	}
	k, err := LoadKnownPeers(filepath.Join(dir, "missing"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := k.Lookup("bob"); ok {
		t.Error("empty record knows bob")
	}
}

// A name a stranger put in their certificate is cut to 64 bytes wherever
// it is shown or logged: a 60,000-character common name costs nothing.
func TestLongCommonNameIsCut(t *testing.T) {
	long, err := LoadIdentity(t.TempDir(), strings.Repeat("é", 30000))
	if err != nil {
		t.Fatal(err)
	}
	self, err := LoadIdentity(t.TempDir(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	known, _ := LoadKnownPeers("")
	pins := NewPins(self, func(string) (ID, bool) { return ID{}, false }, known)
	cert, err := x509.ParseCertificate(long.Cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, err := range []error{
		pins.Check("bob", cert),
		pins.ServerConfig(func(string) bool { return false }).VerifyConnection(tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert}}),
	} {
		if err == nil || len(err.Error()) > 300 || !utf8.ValidString(err.Error()) {
			t.Errorf("error of %d bytes (valid UTF-8: %v), want a short one", len(err.Error()), utf8.ValidString(err.Error()))
		}
	}
}
