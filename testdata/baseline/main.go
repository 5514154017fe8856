// Command baseline is the yardstick of bench_test.go. It has two relays:
//
//   - the plain relay: the simplest honest line relay over raw TCP, with no
//     TLS, no database and no protocol;
//   - the durable relay: the least any chat with p2pchat's promises can
//     cost. Mutual TLS 1.3; every message on disk (appended and
//     fdatasynced) at the receiver before it is shown, and at the sender
//     while it is on the wire; an acknowledgement per message.
//
// Every figure the benchmarks report for p2pchat is compared with this
// program doing the same job in the same run.
//
// Usage:
//
//	baseline recv ADDR                  listen on ADDR; print every line received, as it comes
//	baseline send ADDR                  connect to ADDR once; send every line of stdin, as it comes
//	baseline send-each ADDR             connect to ADDR anew for every line of stdin
//	baseline -dir DIR durable-recv ADDR listen on ADDR, TLS; record, print and acknowledge every line
//	baseline -dir DIR [-coalesce] durable-send ADDR
//	                                    connect to ADDR once, TLS; send and record every line of stdin
//
// recv and durable-recv say "listening on ADDR" on stderr once they listen,
// and send and durable-send say "connected to ADDR" once they have
// connected (durable-send: once the TLS handshake is done): the benchmarks
// wait for these.
//
// The plain relay reads lines with bufio and writes them one write per
// line, with no batching, both into the socket and onto stdout.
//
// The durable relay:
//
//   - Both ends make a self-signed Ed25519 certificate at start; the
//     receiver requires the sender's, and neither verifies anything else
//     (it is a yardstick, not a protocol). TLS 1.3 only.
//   - durable-send reads lines from stdin and writes each to the
//     connection at once, one write (one TLS record) per line like the
//     plain relay, then hands it to a goroutine that appends whatever has
//     accumulated to DIR/sent with one write and one fdatasync: the
//     sender's sync overlaps the receiver's work. Another goroutine reads
//     the acknowledgements. At the end of stdin it waits for its last sync
//     and for an acknowledgement of every line, then exits. With -coalesce,
//     the lines that are already read when one is (so that none waits for
//     another) go in one write.
//   - durable-recv reads lines from each connection in one goroutine (with
//     a buffer under TLS, so that a read from the socket takes many
//     records) and hands them to a second one, which takes every line read
//     so far (a batch), appends the batch to DIR/received with one write,
//     makes one fdatasync, prints the batch on stdout with one write, then
//     writes an "ack" line per message back in one write. Lines read while
//     it syncs make the next batch: group commit.
package main

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

func main() {
	dir := flag.String("dir", "", "where the durable relay keeps its file (durable modes only)")
	coalesce := flag.Bool("coalesce", false, "durable-send: write the lines of stdin read together in one write, not one write per line")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: baseline recv|send|send-each ADDR\n       baseline -dir DIR durable-recv|durable-send ADDR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 {
		flag.Usage()
		os.Exit(2)
	}
	mode, addr := flag.Arg(0), flag.Arg(1)
	if (mode == "durable-recv" || mode == "durable-send") && *dir == "" {
		fmt.Fprintf(os.Stderr, "baseline: %s needs -dir DIR\n", mode)
		os.Exit(2)
	}
	var err error
	switch mode {
	case "recv":
		err = recv(addr)
	case "send":
		err = send(addr)
	case "send-each":
		err = sendEach(addr)
	case "durable-recv":
		err = durableRecv(addr, filepath.Join(*dir, "received"))
	case "durable-send":
		err = durableSend(addr, filepath.Join(*dir, "sent"), *coalesce)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "baseline:", err)
		os.Exit(1)
	}
}

// recv accepts connections for ever and copies each one's lines to stdout.
func recv(addr string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "listening on", ln.Addr())
	var mu sync.Mutex // one line at a time on stdout
	for {
		conn, err := ln.Accept()
		if err != nil {
			return err
		}
		go func() {
			defer conn.Close()
			br := bufio.NewReader(conn)
			for {
				line, err := br.ReadBytes('\n')
				if len(line) > 0 {
					mu.Lock()
					os.Stdout.Write(line)
					mu.Unlock()
				}
				if err != nil {
					return
				}
			}
		}()
	}
}

// send connects once and writes each line of stdin to the connection.
func send(addr string) error {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	fmt.Fprintln(os.Stderr, "connected to", addr)
	return eachLine(func(line []byte) error {
		_, err := conn.Write(line)
		return err
	})
}

// sendEach connects anew for each line of stdin: the yardstick for a first
// message, when no connection is open.
func sendEach(addr string) error {
	fmt.Fprintln(os.Stderr, "ready to connect to", addr)
	return eachLine(func(line []byte) error {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return err
		}
		_, err = conn.Write(line)
		conn.Close()
		return err
	})
}

// eachLine calls f with each line of stdin, '\n' included, as it comes.
func eachLine(f func(line []byte) error) error {
	br := bufio.NewReader(os.Stdin)
	for {
		line, err := br.ReadBytes('\n')
		if len(line) > 0 {
			if err := f(line); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// eachBuffered calls f with the lines of stdin that are there to be read
// at once, '\n' included, and their number: as soon as a line is read, with
// the complete lines already read after it, so that none waits for
// another.
func eachBuffered(f func(buf []byte, n int) error) error {
	br := bufio.NewReaderSize(os.Stdin, 64<<10)
	var buf []byte
	for {
		n := 0
		buf = buf[:0]
		var err error
		for {
			var line []byte
			line, err = br.ReadSlice('\n')
			if errors.Is(err, bufio.ErrBufferFull) {
				return fmt.Errorf("a line of stdin is longer than %d bytes", br.Size())
			}
			if len(line) > 0 {
				buf = append(buf, line...)
				n++
			}
			if err != nil || !hasLine(br) {
				break
			}
		}
		if n > 0 {
			if err := f(buf, n); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// hasLine reports whether br holds a complete line, to be read without
// waiting.
func hasLine(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.IndexByte(b, '\n') >= 0
}

// The durable relay.

// ackLine is what durable-recv writes back for each line it has recorded
// and printed.
var ackLine = []byte("ack\n")

// durableRecv accepts TLS connections for ever; each connection's lines are
// recorded in path, printed and acknowledged in batches.
func durableRecv(addr, path string) error {
	cert, err := selfSigned("durable-recv")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	config := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAnyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "listening on", ln.Addr())
	var mu sync.Mutex // one batch at a time in the file and on stdout
	for {
		raw, err := ln.Accept()
		if err != nil {
			return err
		}
		conn := tls.Server(readBuffered(raw), config)
		go func() {
			defer conn.Close()
			if err := durableConn(conn, f, &mu); err != nil && !errors.Is(err, io.EOF) {
				fmt.Fprintln(os.Stderr, "baseline: connection:", err)
			}
		}()
	}
}

// bufferedConn reads a connection through a buffer. Under TLS, it saves a
// read (or two) from the socket per record: crypto/tls reads a record's
// header, then its body, and a line is a record of its own.
type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func readBuffered(c net.Conn) net.Conn {
	return &bufferedConn{Conn: c, r: bufio.NewReaderSize(c, 64<<10)}
}

func (c *bufferedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// batcher hands lines from one goroutine to another: put adds lines,
// take waits for at least one and returns all there are.
type batcher struct {
	mu    sync.Mutex
	buf   []byte // lines, '\n' included
	n     int    // how many lines in buf
	spare []byte // the buffer taken last time, for reuse
	ready chan struct{}
	done  bool
}

func newBatcher() *batcher { return &batcher{ready: make(chan struct{}, 1)} }

// put adds n lines and reports whether the batcher held none before.
func (b *batcher) put(lines []byte, n int) (wasIdle bool) {
	b.mu.Lock()
	wasIdle = b.n == 0
	b.buf = append(b.buf, lines...)
	b.n += n
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default:
	}
	return wasIdle
}

// close says no more lines will come; take returns what is left, then
// n == 0.
func (b *batcher) close() {
	b.mu.Lock()
	b.done = true
	b.mu.Unlock()
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

// take waits until there is a line or the batcher is closed and returns
// the lines and their number. buf is valid until the next take.
func (b *batcher) take() (buf []byte, n int) {
	for {
		b.mu.Lock()
		if b.n > 0 {
			buf, n = b.buf, b.n
			b.buf, b.n, b.spare = b.spare[:0], 0, buf
			b.mu.Unlock()
			return buf, n
		}
		done := b.done
		b.mu.Unlock()
		if done {
			return nil, 0
		}
		<-b.ready
	}
}

// durableConn reads lines from conn in one goroutine; this one records,
// prints and acknowledges them, a batch at a time.
func durableConn(conn *tls.Conn, f *os.File, mu *sync.Mutex) error {
	if err := conn.Handshake(); err != nil {
		return err
	}
	lines := newBatcher()
	errc := make(chan error, 1)
	go func() {
		defer lines.close()
		br := bufio.NewReaderSize(conn, 64<<10)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				errc <- err
				return
			}
			if lines.put(line, 1) && br.Buffered() == 0 {
				// A line alone: let it be recorded now, not once this
				// goroutine blocks reading the next (the recorder was
				// readied on this thread and would wait until then).
				runtime.Gosched()
			}
		}
	}()
	var acks []byte
	for {
		batch, n := lines.take()
		if n == 0 {
			return <-errc
		}
		mu.Lock()
		_, err := f.Write(batch)
		if err == nil {
			err = syscall.Fdatasync(int(f.Fd()))
		}
		if err == nil {
			_, err = os.Stdout.Write(batch)
		}
		mu.Unlock()
		if err != nil {
			return err
		}
		acks = acks[:0]
		for range n {
			acks = append(acks, ackLine...)
		}
		if _, err := conn.Write(acks); err != nil {
			return err
		}
	}
}

// durableSend connects once with TLS, writes each line of stdin to the
// connection as it comes, and records the lines in path in the background.
// With coalesce, the lines read together go in one write.
func durableSend(addr, path string, coalesce bool) error {
	cert, err := selfSigned("durable-send")
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	conn, err := tls.Dial("tcp", addr, &tls.Config{
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // a yardstick: the handshake's cost, no verification
		MinVersion:         tls.VersionTLS13,
	})
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.Handshake(); err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "connected to", addr)

	// The acknowledgements.
	var ackMu sync.Mutex
	acked := 0
	ackChanged := make(chan struct{}, 1)
	ackErr := make(chan error, 1)
	go func() {
		br := bufio.NewReader(conn)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				ackErr <- err
				return
			}
			if !bytes.Equal(line, ackLine) {
				ackErr <- fmt.Errorf("unexpected line %q from the receiver", line)
				return
			}
			ackMu.Lock()
			acked++
			ackMu.Unlock()
			select {
			case ackChanged <- struct{}{}:
			default:
			}
		}
	}()

	// The sender's own record, synced while the lines are on the wire.
	lines := newBatcher()
	syncErr := make(chan error, 1)
	go func() {
		for {
			batch, n := lines.take()
			if n == 0 {
				syncErr <- nil
				return
			}
			_, err := f.Write(batch)
			if err == nil {
				err = syscall.Fdatasync(int(f.Fd()))
			}
			if err != nil {
				syncErr <- err
				return
			}
		}
	}()

	sent := 0
	if coalesce {
		err = eachBuffered(func(buf []byte, n int) error {
			if _, err := conn.Write(buf); err != nil {
				return err
			}
			sent += n
			lines.put(buf, n)
			return nil
		})
	} else {
		err = eachLine(func(line []byte) error {
			if _, err := conn.Write(line); err != nil {
				return err
			}
			sent++
			lines.put(line, 1)
			return nil
		})
	}
	lines.close()
	if serr := <-syncErr; err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	for {
		ackMu.Lock()
		n := acked
		ackMu.Unlock()
		if n >= sent {
			return nil
		}
		select {
		case <-ackChanged:
		case err := <-ackErr:
			return fmt.Errorf("%d of %d lines acknowledged: %w", n, sent, err)
		}
	}
}

// selfSigned makes an Ed25519 key and a certificate for it, signed by
// itself.
func selfSigned(name string) (tls.Certificate, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 64))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}
