package main

// Floods from a hostile peer, against the real binary: a friend who floods
// messages, strangers who flood handshakes with certificates whose common
// name is 60,000 characters, and one identity that holds thousands of idle
// authenticated connections. The receiver's memory (VmHWM) and descriptors
// (/proc/PID/fd) are sampled throughout, and a real friend still
// delivers. Each runs small in CI; P2PCHAT_FULL=1 runs the sizes of issue
// 11 (see floodSize).

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"p2pchat/network"
	"p2pchat/network/wire"
)

// The bounds a flood must stay within, whatever it sends.
const (
	maxFloodRSS = 100 // MiB, VmHWM
	maxFloodFDs = 1000
	// probeDeadline is how long the real friend's message may take through
	// a flood before the test fails: generous; the target is 5 s.
	probeDeadline = 30 * time.Second
)

// floodSize is ci, or full with P2PCHAT_FULL=1.
func floodSize[T any](ci, full T) T {
	if os.Getenv("P2PCHAT_FULL") == "1" {
		return full
	}
	return ci
}

// screen reads a receiver's stdout: it counts each numbered flood message
// ("flood N …") and notes when each probe ("probe N") came.
type screen struct {
	mu      sync.Mutex
	counts  []uint8 // by flood number
	floods  int     // flood lines
	lines   int
	other   []string // lines that are neither, the first few
	probes  map[int]time.Time
	changed chan struct{}
	// A terminal that stalls: after stallAfter lines, reading waits until
	// gate is closed.
	stallAfter int
	gate       chan struct{}
}

func newScreen() *screen {
	return &screen{probes: map[int]time.Time{}, changed: make(chan struct{})}
}

func (s *screen) collect(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 64<<10)
	for sc.Scan() {
		if s.gate != nil && s.lines == s.stallAfter {
			<-s.gate
		}
		text, ok := strings.CutPrefix(sc.Text(), "Message from user_1: ")
		s.mu.Lock()
		s.lines++
		switch {
		case ok && strings.HasPrefix(text, "flood "):
			n, _ := strconv.Atoi(strings.Fields(text)[1])
			for len(s.counts) <= n {
				s.counts = append(s.counts, 0)
			}
			if s.counts[n] < 255 {
				s.counts[n]++
			}
			s.floods++
		case ok && strings.HasPrefix(text, "probe "):
			n, _ := strconv.Atoi(strings.TrimPrefix(text, "probe "))
			s.probes[n] = time.Now()
		case len(s.other) < 10:
			s.other = append(s.other, sc.Text())
		}
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
}

// wait waits until cond holds of the screen, for at most within.
func (s *screen) wait(t *testing.T, what string, within time.Duration, cond func(*screen) bool) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		ok, changed := cond(s), s.changed
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			s.mu.Lock()
			defer s.mu.Unlock()
			t.Fatalf("%s: not within %v (%d lines on stdout; others: %q)", what, within, s.lines, s.other)
		}
	}
}

// floodReceiver is user_2 of c, run with stdout read by a screen.
type floodReceiver struct {
	*proc
	screen *screen
}

func startFloodReceiver(t *testing.T, c *chat, s *screen) *floodReceiver {
	t.Helper()
	r := &floodReceiver{screen: s}
	r.proc = startProcWith(t, "user_2", r.screen, binary, "--peers", c.peersFile, "--data-dir", c.dirs["user_2"], "user_2")
	r.stderr.waitLine(t, "listening on "+c.addr("user_2"))
	return r
}

// startProcWith is startProc with stdout read by out.
func startProcWith(t *testing.T, label string, out interface{ collect(io.Reader) }, path string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+t.TempDir())
	p := &proc{label: label, cmd: cmd, stdout: newOutput(label + "'s stdout"), stderr: newStream(label + "'s stderr"), started: time.Now()}
	p.stdin, p.exited = launch(t, label, cmd, out, p.stderr)
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("%s stderr:\n%s", label, quoteLines(p.stderr.snapshot()))
		}
	})
	return p
}

// usage samples a process's descriptors until stop, and returns the most
// seen; VmHWM gives its memory's high-water mark at the end.
type usage struct {
	maxFDs atomic.Int64
	stop   chan struct{}
	done   chan struct{}
}

func sampleUsage(t *testing.T, p *proc) *usage {
	t.Helper()
	u := &usage{stop: make(chan struct{}), done: make(chan struct{})}
	dir := fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid)
	go func() {
		defer close(u.done)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			if es, err := os.ReadDir(dir); err == nil && int64(len(es)) > u.maxFDs.Load() {
				u.maxFDs.Store(int64(len(es)))
			}
			select {
			case <-tick.C:
			case <-u.stop:
				return
			}
		}
	}()
	t.Cleanup(func() { u.end() })
	return u
}

func (u *usage) end() {
	select {
	case <-u.stop:
	default:
		close(u.stop)
	}
	<-u.done
}

// check ends sampling and fails the test if p went past the bounds; it
// returns the figures for the log.
func (u *usage) check(t *testing.T, p *proc) string {
	t.Helper()
	u.end()
	hwm := statusMB(t, p, "VmHWM")
	fds := u.maxFDs.Load()
	if hwm >= maxFloodRSS {
		t.Errorf("the receiver's memory peaked at %.1f MB (VmHWM), want under %d MB", hwm, maxFloodRSS)
	}
	if fds >= maxFloodFDs {
		t.Errorf("the receiver had %d descriptors open, want under %d", fds, maxFloodFDs)
	}
	return fmt.Sprintf("VmHWM %.1f MB, at most %d descriptors", hwm, fds)
}

// prober has a real user_1 send the receiver one probe after another,
// each once the last is on the receiver's screen, until stop; it returns
// how long each took.
func prober(t *testing.T, c *chat, r *floodReceiver, stop <-chan struct{}) func() []time.Duration {
	t.Helper()
	friend := startProc(t, "user_1", binary, "--peers", c.peersFile, "--data-dir", c.dirs["user_1"], "user_1")
	friend.stderr.waitLine(t, "listening on "+c.addr("user_1"))
	var took []time.Duration
	done := make(chan struct{})
	var failed error
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			sent := time.Now()
			if _, err := io.WriteString(friend.stdin, fmt.Sprintf("user_2/probe %d\n", i)); err != nil {
				failed = err
				return
			}
			deadline := time.NewTimer(probeDeadline)
			for {
				r.screen.mu.Lock()
				at, ok := r.screen.probes[i]
				changed := r.screen.changed
				r.screen.mu.Unlock()
				if ok {
					took = append(took, at.Sub(sent))
					break
				}
				select {
				case <-changed:
					continue
				case <-deadline.C:
					failed = fmt.Errorf("probe %d not on the receiver's screen within %v", i, probeDeadline)
					return
				}
			}
			deadline.Stop()
		}
	}()
	return func() []time.Duration {
		<-done
		if failed != nil {
			t.Fatal(failed)
		}
		if len(took) == 0 {
			t.Fatal("no probe was sent")
		}
		return took
	}
}

func worst(d []time.Duration) time.Duration {
	var w time.Duration
	for _, x := range d {
		w = max(w, x)
	}
	return w
}

// dialAs opens a TLS connection to addr with cert, and sends a hello as
// name if name is not empty.
func dialAs(addr string, cert tls.Certificate, name string) (*tls.Conn, error) {
	c, err := tls.Dial("tcp", addr, &tls.Config{
		Certificates:       []tls.Certificate{cert},
		InsecureSkipVerify: true, // a hostile peer checks nothing
		MinVersion:         tls.VersionTLS13,
	})
	if err != nil || name == "" {
		return c, err
	}
	b := wire.AppendFrame(nil, wire.Hello{Version: wire.Version, Name: name})
	if _, err := c.Write(b); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// floodText is the n-th flood message: 250 characters.
func floodText(n int) string {
	s := fmt.Sprintf("flood %d ", n)
	return s + strings.Repeat("f", 250-len(s))
}

// A friend (the holder of user_1's key) floods 250-character messages as
// fast as it can: the receiver stays under the bounds and shows every
// message exactly once. When its terminal stalls, it stops reading from
// the friend rather than buffer: it acknowledges (records) only a few
// thousand messages past what the terminal took.
func TestFriendFloodingMessages(t *testing.T) {
	flood := floodSize(5*time.Second, 30*time.Second)
	for _, tc := range []struct {
		name  string
		stall bool // the terminal stops reading for the flood's duration
	}{
		{"a terminal that keeps up", false},
		{"a terminal that stalls", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newChat(t, "user_1", "user_2")
			s := newScreen()
			if tc.stall {
				s.stallAfter, s.gate = 1000, make(chan struct{})
			}
			r := startFloodReceiver(t, c, s)
			u := sampleUsage(t, r.proc)
			id, err := network.LoadIdentity(c.dirs["user_1"], "user_1")
			if err != nil {
				t.Fatal(err)
			}
			conn, err := dialAs(c.addr("user_2"), id.Cert, "user_1")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			var acks atomic.Int64
			go func() { // acks, until the connection closes
				br := bufio.NewReader(conn)
				buf := make([]byte, wire.MaxFrameSize)
				for {
					f, err := wire.ReadFrame(br, buf)
					if err != nil {
						return
					}
					if _, ok := f.(wire.Ack); ok {
						acks.Add(1)
					}
				}
			}()
			began := time.Now()
			sent := 0
			var writeErr error
			wrote := make(chan struct{})
			go func() { // as fast as it can, for the flood's duration
				defer close(wrote)
				var stream wire.StreamID
				rand.Read(stream[:])
				bw := bufio.NewWriterSize(conn, 64<<10)
				for time.Since(began) < flood {
					if writeErr = wire.WriteFrame(bw, wire.Message{Stream: stream, Seq: uint64(sent + 1), Sent: time.Now(), Text: floodText(sent + 1)}); writeErr != nil {
						return
					}
					sent++
				}
				writeErr = bw.Flush()
			}()
			ahead := int64(0)
			if tc.stall {
				<-time.After(flood) // the terminal stalls this long
				s.mu.Lock()
				ahead = acks.Load() - int64(s.floods)
				s.mu.Unlock()
				close(s.gate)
			}
			<-wrote
			if writeErr != nil {
				t.Fatalf("after %d messages: %v", sent, writeErr)
			}
			writing := time.Since(began)
			s.wait(t, fmt.Sprintf("all %d messages on the screen", sent), waitTimeout+time.Duration(sent)*100*time.Microsecond, func(s *screen) bool {
				return s.floods >= sent
			})
			shown := time.Since(began)
			figures := u.check(t, r.proc)
			if ahead > 5000 {
				t.Errorf("with the terminal stalled, %d messages were acknowledged past what it showed: the receiver kept reading", ahead)
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			for n := 1; n <= sent; n++ {
				if n >= len(s.counts) || s.counts[n] != 1 {
					got := 0
					if n < len(s.counts) {
						got = int(s.counts[n])
					}
					t.Fatalf("flood message %d shown %d times, want once", n, got)
				}
			}
			t.Logf("figure: a friend flooding %d messages of 250 characters for %v (%.0f msg/s written, %.0f msg/s shown): %s; acknowledged past the screen while it stalled: %d [%s]",
				sent, writing.Round(time.Millisecond), float64(sent)/writing.Seconds(), float64(sent)/shown.Seconds(), figures, ahead, machine())
		})
	}
}

// longCNCert is a self-signed certificate whose common name is n
// characters long.
func longCNCert(t *testing.T, n int) tls.Certificate {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: strings.Repeat("A", n)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// Strangers flood the receiver with TLS handshakes whose certificate names
// someone 60,000 characters long (refused, and reported in a summary):
// the receiver stays under the bounds and a real friend still delivers.
func TestLongNameCertificateFlood(t *testing.T) {
	flood := floodSize(5*time.Second, 60*time.Second)
	c := newChat(t, "user_1", "user_2")
	r := startFloodReceiver(t, c, newScreen())
	u := sampleUsage(t, r.proc)
	cert := longCNCert(t, 60000)
	stop := make(chan struct{})
	probes := prober(t, c, r, stop)
	var handshakes atomic.Int64
	var wg sync.WaitGroup
	began := time.Now()
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(began) < flood {
				if conn, err := dialAs(c.addr("user_2"), cert, ""); err == nil {
					conn.Read(make([]byte, 1)) // the refusal
					conn.Close()
				}
				handshakes.Add(1)
			}
		}()
	}
	wg.Wait()
	close(stop)
	took := probes()
	figures := u.check(t, r.proc)
	r.stderr.waitLine(t, "WARNING: a connection from 127.0.0.1:")
	// The first refusals in full, then a summary per 10 s.
	if n, most := countFunc(r.stderr.snapshot(), func(l string) bool { return strings.Contains(l, "WARNING") }), 3+int(flood/(10*time.Second)); n > most {
		t.Errorf("%d WARNING lines for one flood of %v, want at most %d", n, flood, most)
	}
	t.Logf("figure: %d handshakes with a 60,000-character CN in %v: %s; the friend's %d messages took at worst %v [%s]",
		handshakes.Load(), flood, figures, len(took), worst(took).Round(time.Millisecond), machine())
}

// One identity (user_3's key) opens connection after connection, each
// authenticated and then left idle: the receiver keeps at most a few of
// them, stays under the bounds, and a real friend still delivers.
func TestOneIdentityHoldingManyConnections(t *testing.T) {
	total := floodSize(1000, 20000)
	c := newChat(t, "user_1", "user_2", "user_3")
	r := startFloodReceiver(t, c, newScreen())
	u := sampleUsage(t, r.proc)
	id, err := network.LoadIdentity(c.dirs["user_3"], "user_3")
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	probes := prober(t, c, r, stop)
	var opened, closedByPeer atomic.Int64
	var wg, readers sync.WaitGroup
	began := time.Now()
	next := atomic.Int64{}
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(total) {
				conn, err := dialAs(c.addr("user_2"), id.Cert, "user_3")
				if err != nil {
					continue
				}
				opened.Add(1)
				readers.Add(1)
				go func() { // held until the receiver closes it
					defer readers.Done()
					io.Copy(io.Discard, conn)
					closedByPeer.Add(1)
					conn.Close()
				}()
			}
		}()
	}
	wg.Wait()
	held := time.Since(began)
	close(stop)
	took := probes()
	figures := u.check(t, r.proc)
	// All but the last few were closed by the receiver.
	waitPoll(t, "the receiver to close all but 4 of user_3's connections", func() bool {
		return closedByPeer.Load() >= opened.Load()-4
	})
	t.Cleanup(func() {
		r.kill()
		readers.Wait()
	})
	t.Logf("figure: one identity opened %d authenticated connections in %v: %s; the friend's %d messages took at worst %v [%s]",
		opened.Load(), held.Round(time.Millisecond), figures, len(took), worst(took).Round(time.Millisecond), machine())
}
