package trust

import (
	"crypto/ecdh"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ID identifies an instance: the SHA-256 of its certificate. Two instances
// have the same ID only if they hold the same certificate.
type ID [sha256.Size]byte

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// idGroup is the length of the dash-separated groups in an ID's text form.
const idGroup = 13

// String is the ID as a person copies it: 52 base32 characters in four
// groups joined by dashes, with no spaces.
func (id ID) String() string {
	s := idEncoding.EncodeToString(id[:])
	var b strings.Builder
	for i := 0; i < len(s); i += idGroup {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i:min(i+idGroup, len(s))])
	}
	return b.String()
}

// IsZero reports whether id is unset.
func (id ID) IsZero() bool { return id == ID{} }

// ParseID reads an ID as String writes it; ASCII case and dashes do not
// matter. Any other spelling that would decode to the same bytes (another
// last character, letters that only fold to ASCII) is refused, and so is
// the zero ID, which names nobody: one ID has one text.
func ParseID(s string) (ID, error) {
	var id ID
	bad := fmt.Errorf("bad ID %q: want 52 letters and digits 2-7 as p2pchat --id prints them", s)
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return id, bad
		}
	}
	clean := strings.ToUpper(strings.ReplaceAll(s, "-", ""))
	b, err := idEncoding.DecodeString(clean)
	if err != nil || len(b) != len(id) {
		return id, bad
	}
	copy(id[:], b)
	if idEncoding.EncodeToString(id[:]) != clean {
		return ID{}, bad
	}
	if id.IsZero() {
		return ID{}, fmt.Errorf("bad ID %q: the zero ID names nobody", s)
	}
	return id, nil
}

// CertID is the ID of the certificate whose DER encoding is der.
func CertID(der []byte) ID { return sha256.Sum256(der) }

// Identity is an instance's key pair and self-signed certificate (the
// certificate's common name is the instance's name), and its mailbox key,
// to which friends seal mail that others carry (see Seal).
type Identity struct {
	Cert    tls.Certificate
	ID      ID
	mailbox *ecdh.PrivateKey
}

// Files of an identity in the data directory, both owner-only.
const (
	identityKeyFile  = "identity.key"
	identityCertFile = "identity.crt"
)

// LoadIdentity reads the identity kept in dir, creating it for name on first
// use, and the mailbox key beside it, created if missing (an identity made
// before mail was carried has none). The private keys never leave dir.
func LoadIdentity(dir, name string) (*Identity, error) {
	id, err := loadIdentity(dir, name)
	if err != nil {
		return nil, err
	}
	if id.mailbox, err = loadMailbox(dir); err != nil {
		return nil, err
	}
	return id, nil
}

func loadIdentity(dir, name string) (*Identity, error) {
	keyPath := filepath.Join(dir, identityKeyFile)
	certPath := filepath.Join(dir, identityCertFile)
	keyPEM, kerr := os.ReadFile(keyPath)
	certPEM, cerr := os.ReadFile(certPath)
	switch {
	case errors.Is(kerr, os.ErrNotExist) && errors.Is(cerr, os.ErrNotExist):
		return createIdentity(keyPath, certPath, name)
	case kerr != nil:
		return nil, fmt.Errorf("cannot read the identity key: %w", kerr)
	case cerr != nil:
		return nil, fmt.Errorf("cannot read the identity certificate: %w", cerr)
	}
	if st, err := os.Stat(keyPath); err == nil && st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(keyPath, 0o600); err != nil {
			return nil, fmt.Errorf("cannot protect the identity key: %w", err)
		}
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity in %s is unusable: %w", dir, err)
	}
	return &Identity{Cert: cert, ID: CertID(cert.Certificate[0])}, nil
}

func createIdentity(keyPath, certPath, name string) (*Identity, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name, Organization: []string{"p2pchat"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(100, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	// The certificate first: a key without a certificate is refused at the
	// next start rather than silently replaced.
	if err := writeFileAtomic(certPath, certPEM); err != nil {
		return nil, fmt.Errorf("cannot save the identity certificate: %w", err)
	}
	if err := writeFileAtomic(keyPath, keyPEM); err != nil {
		return nil, fmt.Errorf("cannot save the identity key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	return &Identity{Cert: cert, ID: CertID(der)}, nil
}

// writeFileAtomic replaces path with data, owner-only, so that a crash
// leaves either the old file or the new one.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// HasIdentity reports whether dir holds an identity already.
func HasIdentity(dir string) bool {
	_, err := os.Lstat(filepath.Join(dir, identityKeyFile))
	return err == nil
}
