// Package network is p2pchat's peer-to-peer layer: the table of friends,
// the server friends connect to, a lazily dialled client connection per
// friend, idle closing, delivery exactly once, and the wire protocol. It
// never prints and knows nothing about terminals: what happens is reported
// as typed events on Node.Events, and the caller renders them.
//
// Each file owns one thing:
//
//	node.go      Node: Start, Close, Send, Status, History, Friends
//	group.go     SendGroup, one report per group message, the check of a group tag
//	events.go    the events; errors.go, the errors
//	listen.go    the accept loop and serverConn: the server side of the handshake
//	admission.go which handshakes not yet proved a friend's are kept, and which closed for room
//	dial.go      the lazy dial and the client side of the handshake
//	conn.go      conn, a friend's connection after the handshake, either end: frames both ways
//	carry.go     sealed mail friends carry for each other: cards, hand-off, carrying, receipts
//	keepalive.go with no address of our own, one connection kept open to a friend who has one
//	reach.go     whether we can be reached from outside: a friend dials us back
//	outbox.go    per friend, the queue and the goroutine that sends it
//	inbox.go     per friend, de-duplication, the record before showing, replay
//	budget.go    per friend, what they sent in the rolling window: their budget on disk
//	presence.go  who is online, and when each friend was last seen
//	announce.go  at start, telling the friends we talked with that we are back
//	table.go     the table of friends; trust.go, Forget, Accept and what network takes from trust
//
// and the subpackages own the rest: wire (frames, limits, name and text
// rules, the protocol doc; no state), trust (identities, pins, TLS
// configurations) and internal/store (the SQLite database, reachable only
// through this package: OpenStore).
//
// A message's way: Send hands it to the friend's outbox, which records it
// in the store and writes it on the client connection at once, dialling
// first if need be; the friend's conn reads it, its inbox records it and
// hands it on as MessageReceived, and the conn acknowledges it; our conn
// reads the ack and the outbox reports MessageDelivered. A connection
// carries frames both ways: when the friend cannot be dialled but has a
// connection open to us (behind a NAT, say), the outbox sends on that.
//
// # Identity and trust
//
// Every instance has an Identity: an Ed25519 key and a self-signed
// certificate whose common name is the instance's name, created in the data
// directory on first run. Its ID is the SHA-256 of the certificate, written
// as 52 base32 characters in four dash-joined groups. Every connection is
// TLS 1.3 with certificates on both sides and no certificate authority:
// instead, a name is bound to an ID, by the table's fourth column where it
// is given, else by KnownPeers, which pins the first ID seen for a name
// (trust on first use). A connection is accepted as a friend's only if its
// certificate names that friend and its ID matches the pin; the client
// checks the server during the handshake, the server checks the client
// during the handshake and again against the hello. A mismatch closes the
// connection before any frame is read or written and is reported with an
// IdentityError carrying both IDs.
//
// Inbound connections that have not finished the TLS handshake and the
// hello are capped, per source host and in total; past a cap the oldest is
// closed. The handshake and hello together have HandshakeTimeout.
//
// # Delivery
//
// A message is identified by its sender, the sender's stream and a
// sequence number. A stream is 16 random bytes that the store begins at
// every start, made durable before any message goes out;
// within it, the messages to each friend are numbered from 1. A database
// that is deleted, moved aside or restored from an older copy therefore
// never gives a friend a number it has seen: the next start is a new
// stream. Each message also carries its stream's low-water mark: every
// message of that stream up to it was acknowledged, so a receiver that
// lost its state knows it waits for nothing below.
//
// A message is handed to the store and written to the connection at once;
// the store syncs it while the friend receives it, so that the one disk
// sync on a message's path is the receiver's. It is reported queued
// (MessageQueued) or delivered only once it is durable. If the store fails
// to record it (a full disk), it is reported failed (MessageFailed), taken
// off the queue and never sent again; it may have reached the friend once
// already, and while the store keeps failing nothing goes out before it is
// recorded. A message stays queued until the friend acknowledges it; the
// friend acknowledges in order. Unacknowledged messages are written again
// on each new connection: after a lost connection, after AckTimeout
// without an acknowledgement, after a restart. Reaching the friend is
// retried with capped exponential backoff with jitter (at most 10 s), and
// at once when the friend connects to us; the dial and handshake timeouts
// double with each failed attempt in a row, so that a slow link connects.
//
// A message to a group (SendGroup) is a copy per member, each handed to
// the member's outbox as above and numbered in the stream like any other:
// each is delivered exactly once, or waits. The copy carries the group's
// name (the group tag, see package wire); the receiver takes it only if
// the group is @all or one of its table with the sender in it, and
// otherwise acknowledges it without showing it (see inbox.receive).
//
// The receiver records a message whose sequence number is above the last
// one it has from that stream, then hands it on as MessageReceived, then
// acknowledges it. One at or below is a duplicate, acknowledged and not
// handed on; one more than 2^32 above is malformed. A receiver that cannot
// record (a full disk) does not acknowledge, so the sender keeps the
// message and sends it again; it reports StoreFailed once, and
// StoreRecovered when it records again. Node.MarkShown records what the
// shell has shown, so that a message recorded but never shown (a crash in
// between) is handed on again at the next start.
//
// # Connections
//
// A Node listens on its own row of the Table and serves each inbound
// connection in its own goroutine. Messages to a friend go out on a separate
// client connection that the node dials on the first message to that friend,
// reuses for later ones, and closes after Config.IdleTimeout without
// activity; the next message dials again. Two dials have nothing to send:
// at start, one connection to each friend we talked with before, to say we
// are back, so that what they queued for us comes at once (announce.go);
// and, for an instance with no address ("-" on its row: behind a NAT), one
// connection kept open to a friend who has one, with a ping every 25 s
// (keepalive.go). The client's hello and its first messages go out
// together right after the TLS handshake, without waiting for the welcome,
// so a first message is shown two round trips after the dial begins. An
// inbound connection silent for twice the idle timeout is closed, so
// friends that vanished cannot pin descriptors.
// Every read from the other side has a deadline. Cancelling the context given
// to Start, or calling Close, stops everything; Close returns once every
// goroutine has.
//
// # Protocol
//
// The frames, their limits and the rules for names and texts are in
// package wire, whose doc describes the protocol; this package speaks it.
//
// A connection carries frames both ways once it is up (conn.go). Each side
// of a conversation dials its own client connection to the other, as
// before; a friend that cannot be dialled gets its messages down the
// connection it opened, and mail that friends carry (carry.go) goes on
// whichever connection is open.
//
// # Carried mail
//
// When a friend cannot be reached, what waits for them is sealed to their
// mailbox key (package trust: HPKE, signed by our identity key) and handed
// to every other friend with an open connection; each records its copy,
// answers held, delivers it when it meets the recipient, and drops it on
// the recipient's signed receipt, which goes back to us directly or through
// any carrier. Cards (certificate and mailbox key, signed) go out on every
// connection. The recipient takes each message once by (sender, stream,
// seq), whichever way it came, and shows a sender's messages in order: a
// carried one that came ahead of an earlier one is held up to HoldTimeout.
package network
