package main

// The benchmarks' harness (bench_test.go, history_bench_test.go; netem_test.go
// uses it too): children run cheaply enough to measure, their output counted
// rather than kept, the log of an instance watched, and the hub, an instance
// with many friends connected.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"p2pchat/network"
)

// Running processes.

// proc is a running child, p2pchat or the baseline, with stdin a pipe.
type proc struct {
	label  string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *output
	stderr *stream
	exited chan struct{} // closed once it has exited and its output is read
	// started is when it was started: just before the fork and exec.
	started time.Time
}

// startProc runs path with args; it is killed when the benchmark ends, if
// not before.
func startProc(tb testing.TB, label, path string, args ...string) *proc {
	tb.Helper()
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), "XDG_STATE_HOME="+tb.TempDir())
	p := &proc{
		label:  label,
		cmd:    cmd,
		stdout: newOutput(label + "'s stdout"),
		stderr: newStream(label + "'s stderr"),
	}
	p.started = time.Now()
	p.stdin, p.exited = launch(tb, label, cmd, p.stdout, p.stderr)
	tb.Cleanup(func() {
		p.kill()
		if tb.Failed() {
			tb.Logf("%s stderr:\n%s", label, quoteLines(p.stderr.snapshot()))
			tb.Logf("%s stdout ends with:\n%s", label, p.stdout.tailText())
		}
	})
	return p
}

// kill ends the process, if it is still running, and waits for it.
func (p *proc) kill() { kill(p.cmd, p.exited) }

func (p *proc) writeLine(tb testing.TB, line string) {
	tb.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		tb.Fatalf("writing to %s: %v", p.label, err)
	}
}

// output counts the lines a child writes, cheaply enough never to hold back
// the fastest writer: it reads in large chunks, counts newlines, and notes
// when the last chunk came.
type output struct {
	name    string
	mu      sync.Mutex
	lines   int
	at      time.Time // when the last chunk was read
	tail    []byte    // the end of what was read
	eof     bool
	changed chan struct{} // closed and replaced on every change
}

const outputTail = 4 << 10

func newOutput(name string) *output { return &output{name: name, changed: make(chan struct{})} }

func (o *output) collect(r io.Reader) {
	buf := make([]byte, 256<<10)
	for {
		n, err := r.Read(buf)
		now := time.Now()
		o.mu.Lock()
		if n > 0 {
			o.lines += bytes.Count(buf[:n], []byte{'\n'})
			o.at = now
			o.tail = append(o.tail, buf[:n]...)
			if len(o.tail) > 2*outputTail {
				o.tail = append([]byte(nil), o.tail[len(o.tail)-outputTail:]...)
			}
		}
		if err != nil {
			o.eof = true
		}
		close(o.changed)
		o.changed = make(chan struct{})
		o.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (o *output) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lines
}

// waitLines waits until n lines have come in all and returns when the
// chunk that completed them was read. It fails when the output ends first,
// or when nothing comes for waitTimeout.
func (o *output) waitLines(tb testing.TB, n int) time.Time {
	tb.Helper()
	quiet := time.NewTimer(waitTimeout)
	defer quiet.Stop()
	seen := -1
	for {
		o.mu.Lock()
		lines, at, eof, changed := o.lines, o.at, o.eof, o.changed
		o.mu.Unlock()
		if lines >= n {
			return at
		}
		if eof {
			tb.Fatalf("%s ended after %d lines, before %d; it ends with:\n%s", o.name, lines, n, o.tailText())
		}
		if lines != seen {
			seen = lines
			quiet.Reset(waitTimeout)
		}
		select {
		case <-changed:
		case <-quiet.C:
			tb.Fatalf("%s: nothing new for %v at %d lines, waiting for %d; it ends with:\n%s", o.name, waitTimeout, lines, n, o.tailText())
		}
	}
}

// lastLine is the last complete line, without its newline.
func (o *output) lastLine() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	t := bytes.TrimSuffix(o.tail, []byte{'\n'})
	if i := bytes.LastIndexByte(t, '\n'); i >= 0 {
		t = t[i+1:]
	}
	return string(t)
}

func (o *output) tailText() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	t := o.tail
	if len(t) > 1024 {
		t = t[len(t)-1024:]
	}
	return fmt.Sprintf("\t%q", t)
}

// p2pchat instances.

// launch runs name from c with its own data directory and waits for the
// greeting.
func (c *chat) launch(tb testing.TB, name string, flags ...string) *proc {
	tb.Helper()
	args := append([]string{"--peers", c.peersFile, "--data-dir", c.dirs[name]}, flags...)
	p := startProc(tb, name, binary, append(args, name)...)
	p.stderr.waitLine(tb, "listening on "+c.addr(name))
	return p
}

// logWatch follows a p2pchat.log as it grows.
type logWatch struct {
	f     *os.File
	lines []string
	part  []byte // an incomplete last line
}

func watchLog(tb testing.TB, path string) *logWatch {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return &logWatch{f: f}
}

func (w *logWatch) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := w.f.Read(buf)
		w.part = append(w.part, buf[:n]...)
		if n == 0 || err != nil {
			break
		}
	}
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			return
		}
		w.lines = append(w.lines, string(w.part[:i]))
		w.part = w.part[i+1:]
	}
}

func (w *logWatch) count(match func(string) bool) int {
	w.read()
	return countFunc(w.lines, match)
}

// waitCount polls the log until n lines match.
func (w *logWatch) waitCount(tb testing.TB, what string, match func(string) bool, n int) {
	tb.Helper()
	deadline := time.Now().Add(waitTimeout)
	for w.count(match) < n {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s (%d times) in %s", waitTimeout, what, n, w.f.Name())
		}
		time.Sleep(time.Millisecond)
	}
}

// An instance with many friends, the friends being network nodes in this
// process.

// hub is an instance named "hub" whose every friend runs in this process
// and holds a connection to it.
type hub struct {
	proc      *proc
	friends   []*friendNode
	cancel    context.CancelFunc
	closeOnce sync.Once
}

type friendNode struct {
	name      string
	row       network.Friend // its row in its table and the hub's
	node      *network.Node
	db        *network.Store
	delivered chan struct{} // a token per delivery, dropped when one waits
}

// startHub starts k friend nodes, each with its own identity, database and
// 2-row table (itself and the hub, pinned), listening on 127.0.0.2 to
// 127.0.0.251; then the hub with a table of all of them, pinned; then has
// every friend send the hub one message, connectParallel at a time, and
// waits until the hub has printed them all.
func startHub(tb testing.TB, k int) *hub {
	tb.Helper()
	dir := tb.TempDir()
	hubDir := filepath.Join(dir, "hub")
	hubID := idOf(tb, hubDir, "hub")
	id, err := network.ParseID(hubID)
	if err != nil {
		tb.Fatal(err)
	}
	hubPort := freePorts(tb, 1)[0]
	hubRow := network.Friend{Name: "hub", Host: "127.0.0.1", Port: hubPort, ID: id}

	ctx, cancel := context.WithCancel(context.Background())
	h := &hub{friends: make([]*friendNode, k), cancel: cancel}
	tb.Cleanup(h.close)
	if err := parallel(k, setupParallel, func(i int) error {
		f, err := startFriend(ctx, filepath.Join(dir, "friends"), i, hubRow)
		h.friends[i] = f
		return err
	}); err != nil {
		tb.Fatal(err)
	}

	var sb strings.Builder
	fmt.Fprintf(&sb, "hub 127.0.0.1 %d %s\n", hubPort, hubID)
	for _, f := range h.friends {
		fmt.Fprintf(&sb, "%s %s %d %s\n", f.name, f.row.Host, f.row.Port, f.row.ID)
	}
	peers := filepath.Join(dir, "peers")
	if err := os.WriteFile(peers, []byte(sb.String()), 0o600); err != nil {
		tb.Fatal(err)
	}
	h.proc = startProc(tb, "hub", binary, "--peers", peers, "--data-dir", hubDir, "hub")
	h.proc.stderr.waitLine(tb, "listening on "+hubRow.Addr())

	if err := parallel(k, connectParallel, func(i int) error {
		f := h.friends[i]
		if _, err := f.node.Send("hub", "hello from "+f.name); err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		select {
		case <-f.delivered:
			return nil
		case <-time.After(waitTimeout):
			return fmt.Errorf("%s: no delivery to the hub within %v", f.name, waitTimeout)
		}
	}); err != nil {
		tb.Fatal(err)
	}
	h.proc.stdout.waitLines(tb, k)
	return h
}

// startFriend starts the i-th friend node of a hub.
func startFriend(ctx context.Context, dir string, i int, hubRow network.Friend) (*friendNode, error) {
	name := fmt.Sprintf("friend_%04d", i)
	dir = filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	identity, err := network.LoadIdentity(dir, name)
	if err != nil {
		return nil, err
	}
	db, err := network.OpenStore(dir)
	if err != nil {
		return nil, err
	}
	f := &friendNode{name: name, db: db, delivered: make(chan struct{}, 1)}
	host := fmt.Sprintf("127.0.0.%d", 2+i%250)
	// The port was free a moment ago; another process may take it first.
	for attempt := 0; ; attempt++ {
		ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			db.Close()
			return nil, err
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		f.row = network.Friend{Name: name, Host: host, Port: port, ID: identity.ID}
		table, err := network.NewTable([]network.Friend{f.row, hubRow})
		if err != nil {
			db.Close()
			return nil, err
		}
		f.node, err = network.Start(ctx, network.Config{
			Name:        name,
			Table:       table,
			IdleTimeout: time.Hour, // the connection stays open for the whole benchmark
			Identity:    identity,
			Store:       db,
		})
		if err == nil {
			break
		}
		if attempt == 5 {
			db.Close()
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	go func() {
		for ev := range f.node.Events() {
			if _, ok := ev.(network.MessageDelivered); ok {
				select {
				case f.delivered <- struct{}{}:
				default:
				}
			}
		}
	}()
	return f, nil
}

func (f *friendNode) send(tb testing.TB, text string) {
	tb.Helper()
	if _, err := f.node.Send("hub", text); err != nil {
		tb.Fatalf("%s: %v", f.name, err)
	}
}

// sample returns a function that takes one latency sample: a message sent
// by the first friend until the hub prints it.
func (h *hub) sample(tb testing.TB) func() time.Duration {
	i := 0
	return func() time.Duration {
		i++
		return latencies(tb, 1, h.proc.stdout, nil, func(int) { h.friends[0].send(tb, fmt.Sprintf("warm %d", i)) })[0]
	}
}

// inbound is how many of the hub's friends have a connection open to it,
// as they see it.
func (h *hub) inbound(tb testing.TB) int {
	tb.Helper()
	n := 0
	for _, f := range h.friends {
		for _, p := range f.node.Status() {
			if p.Name == "hub" && p.Connected {
				n++
			}
		}
	}
	return n
}

// close stops the hub and every friend node; it is safe to call twice.
func (h *hub) close() {
	h.closeOnce.Do(func() {
		if h.proc != nil {
			h.proc.kill()
		}
		h.cancel()
		parallel(len(h.friends), setupParallel, func(i int) error {
			if f := h.friends[i]; f != nil {
				f.node.Close()
				f.db.Close()
			}
			return nil
		})
	})
}

// parallel runs f(0) to f(n-1), at most limit at once, and returns the
// first error.
func parallel(n, limit int, f func(i int) error) error {
	sem := make(chan struct{}, limit)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
