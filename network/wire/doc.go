// Package wire is p2pchat's wire protocol: the frames friends exchange
// inside TLS, their encoding and limits, and the rules for names and
// message texts. It has no state and does no I/O beyond one frame at a
// time on a buffered reader or writer; package network runs connections
// with it.
//
// Version 3 (Version). Version 1 numbered messages per pair of
// friends from 1 for ever; version 2 had no group tag in a message, and no
// carried mail (frames 6 to 9). A peer
// that speaks another version is refused with a refusal that says to
// upgrade, in both directions, before any message is taken. Inside TLS, a
// connection carries frames:
//
//	frame   = length:uint32 type:uint8 payload
//
// length counts the type byte and the payload, big-endian, and is at most
// MaxFrameSize (2048); a larger length closes the connection before anything
// is allocated. Integers are big-endian. The frame types are:
//
//	1 hello   = "p2pc" version:uint8 name      client -> server, first frame
//	2 welcome = version:uint8 name             server -> client, hello accepted
//	3 message = stream:16 seq:uint64 low:uint64 sent:int64
//	            glen:uint8 group:glen text     either way, after the welcome
//	4 ack     = stream:16 seq:uint64           either way, message received
//	5 refuse  = reason                         server -> client, then close
//	6 card    = reachable:uint8 issued:int64 mailbox:32 cert sig:64
//	                                           either way, after the welcome
//	7 mail    = to:32 from:32 stream:16 seq:uint64 expires:int64 sealed
//	                                           either way: a copy to carry or carried
//	8 held    = to:32 from:32 stream:16 seq:uint64 full:uint8
//	                                           answers a mail handed to carry, or a receipt
//	9 receipt = from:32 to:32 stream:16 seq:uint64 sig:64
//	                                           the recipient's, back to the sender
//	10 ping   = (empty)                        either way, keeps a NAT's mapping
//	11 probe  = port:uint16                    "dial me back": am I reachable from outside?
//	12 probed = ok:uint8 addr                  the answer, with the address dialled
//
// The flow on a connection:
//
//	client                         server
//	  hello(3, "user_1")  ------->           name must be in the server's table
//	                      <-------  welcome(3, "user_2") | refuse("...")
//	  message(S, 7, 6, t, "", "hi") ->       recorded, handed to the
//	                      <-------  ack(S, 7)  application, then acknowledged
//	                      <-------  message(T, 3, 0, t, "", "yo")
//	  ack(T, 3)           ------->
//	  ...
//
// Once the welcome is sent, either end may send messages, and the other
// acknowledges them: a friend that cannot be dialled (behind a NAT) gets
// its mail down the connection it opened. An ack for more messages than
// were sent on the connection is a violation.
//
// A name is 1 to 32 bytes of letters, digits, '_', '-' and '.'. The hello's
// name must be the one the client's certificate carries, and the client
// checks that the welcome names the friend it meant to reach. stream and
// seq identify the message (see package network, Delivery): seq is at least 1, and low, the
// stream's low-water mark, is below seq; stream is never all zeros. sent
// is the sender's clock in Unix milliseconds, shown, never used to order;
// text is the message, 1 to MaxMessageRunes characters of valid UTF-8 (at
// most MaxMessageBytes bytes), sent byte for byte. group is empty (glen 0)
// for a message to one friend; otherwise it is the name of the group the
// message was written to, without its '@', a name by the rules above:
// "all" (AllGroup) for every friend in the table, else a group of the
// table. Each member gets a copy of its own, numbered in the stream like
// any message; the receiver checks that the group is @all or one of its
// table with the sender in it (see package network). The receiver
// acknowledges each message, in order, once it is recorded and handed on.
//
// Carried mail. Each end sends its card once the welcome is sent, and the
// cards it holds of its other friends: an instance's certificate (DER), its
// mailbox key (X25519) and whether it accepts connections, signed with the
// certificate's Ed25519 key over "p2pchat card\x00" and the fields before
// sig. A message for a friend who cannot be reached is sealed into a
// letter, and the letter into a mail frame for each friend who carries:
//
//	letter  = from:32 to:32 stream:16 seq:uint64 low:uint64 sent:int64
//	          glen:uint8 group:glen text sig:64
//
// to and from are IDs (SHA-256 of the certificates); sig is the sender's
// Ed25519 signature over "p2pchat letter\x00" and the fields before it.
// sealed is HPKE (RFC 9180) base mode: DHKEM(X25519, HKDF-SHA256),
// HKDF-SHA256, ChaCha20-Poly1305, to the recipient's mailbox key, with
// info "p2pchat mail\x00" and the recipient's ID; the encapsulated key
// comes first. The mail's outside repeats who, to whom and which message
// (the recipient checks that it matches the letter) and when a carrier
// drops it. A carrier answers held (full: over its budget for the sender,
// not held) once the copy is recorded; the recipient answers a mail with a
// receipt, signed over "p2pchat receipt\x00" and the fields before sig,
// which goes back to the sender directly or through any carrier; the
// sender answers a receipt a carrier brought with held. Anything else
// (an unknown type, a malformed payload, a frame out of place, silence past
// a deadline) closes that connection and is reported as an event and
// logged; the node goes on serving everyone else.
package wire
