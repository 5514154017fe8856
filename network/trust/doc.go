// Package trust owns identities and the trust placed in them: an
// instance's own Ed25519 key and self-signed certificate (Identity), the
// ID that names it (the SHA-256 of the certificate), the pins that bind
// friends' names to IDs (by the table, or on first use in known_peers),
// and the TLS configurations that check those pins on every connection.
// It knows nothing of connections or messages.
package trust
