//go:build unix

package shell_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/creack/pty"
	"github.com/hinshun/vt10x"
	"golang.org/x/text/width"

	"p2pchat/network"
	"p2pchat/network/networktest"
)

// These tests run the real p2pchat binary on a pseudo-terminal and look at
// the screen a terminal emulator (vt10x) renders from its output. The binary
// runs in a child process, built without -race: chzyer/readline has data
// races of its own, and the test binary may be built with -race.

// waitTimeout bounds every wait on a condition in these tests.
const waitTimeout = 10 * time.Second

// Terminal size of every session.
const (
	cols = 100
	rows = 24
)

// binary is the p2pchat executable built by TestMain.
var binary string

func TestMain(m *testing.M) { os.Exit(networktest.RunWithBinary(m, &binary)) }

// deadPort returns a loopback port where nothing listens, nor will while
// the test runs: a socket is bound to it, never listening, until the end.
// Connecting to it is refused.
func deadPort(t *testing.T) int {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return sa.(*syscall.SockaddrInet4).Port
}

// world is a table of friends on loopback, written to a peers file.
type world struct {
	table *network.Table
	file  string
}

// newWorld gives each name a free loopback port and writes the peers file.
func newWorld(t *testing.T, names ...string) world {
	t.Helper()
	return newWorldPorts(t, nil, names...)
}

// newWorldPorts is newWorld with the ports of some names given.
func newWorldPorts(t *testing.T, ports map[string]int, names ...string) world {
	t.Helper()
	var rows []network.Friend
	var b strings.Builder
	for _, n := range names {
		port, ok := ports[n]
		if !ok {
			port = freePort(t)
		}
		f := network.Friend{Name: n, Host: "127.0.0.1", Port: port}
		rows = append(rows, f)
		fmt.Fprintf(&b, "%s %s %d\n", f.Name, f.Host, f.Port)
	}
	tab, err := network.NewTable(rows)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "peers")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return world{table: tab, file: file}
}

func (w world) addr(t *testing.T, name string) string {
	t.Helper()
	f, ok := w.table.Lookup(name)
	if !ok {
		t.Fatalf("%s is not in the table", name)
	}
	return f.Addr()
}

// friend is a network node run by the test itself, race-clean.
type friend struct {
	*network.Node
}

// startFriend starts the node called name, closed when the test ends.
func startFriend(t *testing.T, w world, name string) friend {
	t.Helper()
	id, err := network.LoadIdentity(t.TempDir(), name)
	if err != nil {
		t.Fatal(err)
	}
	db, err := network.OpenStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	n, err := network.Start(context.Background(), network.Config{Name: name, Table: w.table, Identity: id, Store: db})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return friend{n}
}

func (f friend) send(t *testing.T, to, text string) {
	t.Helper()
	if _, err := f.Send(to, text); err != nil {
		t.Fatalf("%s: Send(%q, %q): %v", f.Name(), to, text, err)
	}
}

// expectMessage waits for the next message f receives, to f alone, and
// checks it. Other events are passed over.
func (f friend) expectMessage(t *testing.T, from, text string) {
	t.Helper()
	f.expectGroupMessage(t, from, "", text)
}

// options of a session.
type options struct {
	color   bool     // leave colour on: no NO_COLOR in the environment
	dataDir string   // "" for a fresh one
	env     []string // more of the environment, as KEY=VALUE
}

// session is one p2pchat process on a pseudo-terminal, rendered by vt10x.
type session struct {
	t       *testing.T
	name    string
	dataDir string
	cmd     *exec.Cmd
	ptmx    *os.File
	ttyName string // the terminal's side of the pty, /dev/pts/N
	term    vt10x.Terminal
	changed chan struct{} // signalled after each update of the screen
	exited  chan struct{} // closed once the process has exited
	waitErr error         // what cmd.Wait returned; read after exited
	readEnd chan struct{} // closed once the output is all rendered
	bells   atomic.Int64  // BEL characters written, all told
}

// startSession runs p2pchat as name with the peers file of w. The process
// is killed, if still running, when the test ends.
func startSession(t *testing.T, w world, name string, o options) *session {
	t.Helper()
	if o.dataDir == "" {
		o.dataDir = t.TempDir()
	}
	cmd := exec.Command(binary, "--data-dir", o.dataDir, "--peers", w.file, name)
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TERM=") && !strings.HasPrefix(kv, "NO_COLOR=") {
			env = append(env, kv)
		}
	}
	env = append(env, "TERM=xterm-256color")
	if !o.color {
		env = append(env, "NO_COLOR=1")
	}
	cmd.Env = append(env, o.env...)
	// As pty.StartWithSize does, but knowing the terminal's name, for stty.
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Fatalf("opening a pty: %v", err)
	}
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: cols, Rows: rows}); err != nil {
		t.Fatalf("sizing the pty: %v", err)
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	err = cmd.Start()
	tty.Close()
	if err != nil {
		ptmx.Close()
		t.Fatalf("starting p2pchat on a pty: %v", err)
	}
	s := &session{
		t:       t,
		name:    name,
		dataDir: o.dataDir,
		cmd:     cmd,
		ptmx:    ptmx,
		ttyName: tty.Name(),
		term:    vt10x.New(vt10x.WithSize(cols, rows), vt10x.WithWriter(ptmx)),
		changed: make(chan struct{}, 1),
		exited:  make(chan struct{}),
		readEnd: make(chan struct{}),
	}
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	go s.render()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			cmd.Process.Kill()
			<-s.exited
		}
		ptmx.Close()
		<-s.readEnd
	})
	s.waitPrompt("")
	return s
}

// render copies the process's output into the terminal emulator until the
// pty closes. A rune split between two reads is held back until it is whole.
func (s *session) render() {
	defer close(s.readEnd)
	buf := make([]byte, 32<<10)
	held := 0
	for {
		n, err := s.ptmx.Read(buf[held:])
		n += held
		cut := n
		for i := n - 1; i >= 0 && i >= n-utf8.UTFMax; i-- {
			if utf8.RuneStart(buf[i]) {
				if !utf8.FullRune(buf[i:n]) {
					cut = i
				}
				break
			}
		}
		if cut > 0 {
			s.bells.Add(int64(bytes.Count(buf[:cut], []byte{'\a'})))
			s.term.Write(cellsOf(buf[:cut]))
			select {
			case s.changed <- struct{}{}:
			default:
			}
		}
		held = copy(buf, buf[cut:n])
		if err != nil {
			return
		}
	}
}

// vt10x gives every character one cell. A terminal gives East Asian wide
// and fullwidth characters two, and combining marks and format characters
// none (as readline counts them), so cellsOf writes a filler after each wide
// character and leaves out those of no width: the emulator's columns are
// then a terminal's. screen leaves the fillers out again.
const filler = '\uffff'

func cellsOf(b []byte) []byte {
	out := make([]byte, 0, len(b)+len(b)/2)
	for len(b) > 0 {
		r, size := utf8.DecodeRune(b)
		switch w := cellWidth(r); {
		case r == utf8.RuneError && size == 1:
			out = append(out, b[0])
		case w == 0:
		case w == 2:
			out = append(out, b[:size]...)
			out = utf8.AppendRune(out, filler)
		default:
			out = append(out, b[:size]...)
		}
		b = b[size:]
	}
	return out
}

// cellWidth is how many columns a terminal gives r; control characters, to
// be interpreted, count 1.
func cellWidth(r rune) int {
	if unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf) {
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// columns is how many columns s takes on a terminal.
func columns(s string) int {
	n := 0
	for _, r := range s {
		n += cellWidth(r)
	}
	return n
}

// snapshot is the screen at one moment.
type snapshot struct {
	lines  []string // one a row, trailing blanks removed
	cursor vt10x.Cursor
}

// row is the text of the cursor's row.
func (sn snapshot) row() string { return sn.lines[sn.cursor.Y] }

// count is the number of rows that contain sub.
func (sn snapshot) count(sub string) int {
	n := 0
	for _, l := range sn.lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

// find is the first row equal to line, or -1.
func (sn snapshot) find(line string) int {
	for i, l := range sn.lines {
		if l == line {
			return i
		}
	}
	return -1
}

func (sn snapshot) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cursor at column %d, row %d\n", sn.cursor.X, sn.cursor.Y)
	fmt.Fprintf(&b, "   +%s+\n", strings.Repeat("-", cols))
	for i, l := range sn.lines {
		fmt.Fprintf(&b, "%2d |%-*s|\n", i, cols, l)
	}
	fmt.Fprintf(&b, "   +%s+", strings.Repeat("-", cols))
	return b.String()
}

// screen returns what the terminal shows now.
func (s *session) screen() snapshot {
	s.term.Lock()
	defer s.term.Unlock()
	var sn snapshot
	for y := 0; y < rows; y++ {
		var b strings.Builder
		for x := 0; x < cols; x++ {
			c := s.term.Cell(x, y).Char
			switch c {
			case filler:
				continue
			case 0:
				c = ' '
			}
			b.WriteRune(c)
		}
		sn.lines = append(sn.lines, strings.TrimRight(b.String(), " "))
	}
	sn.cursor = s.term.Cursor()
	return sn
}

// cell returns the glyph at column x of row y.
func (s *session) cell(x, y int) vt10x.Glyph {
	s.term.Lock()
	defer s.term.Unlock()
	return s.term.Cell(x, y)
}

// waitScreen waits until cond holds for the screen, and returns that
// screen. It fails the test, showing the screen, after waitTimeout.
func (s *session) waitScreen(cond func(sn snapshot) bool, what string) snapshot {
	s.t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		sn := s.screen()
		if cond(sn) {
			return sn
		}
		select {
		case <-s.changed:
		case <-s.readEnd:
			// The process is gone and its output all rendered: the screen
			// changes no more. Look once more, then give up.
			if sn := s.screen(); cond(sn) {
				return sn
			}
			<-s.exited
			s.t.Fatalf("p2pchat exited (%v) before %s; the screen:\n%s", s.waitErr, what, s.screen())
		case <-timeout.C:
			exit := "still running"
			select {
			case <-s.exited:
				exit = fmt.Sprintf("exited: %v", s.waitErr)
			default:
			}
			s.t.Fatalf("waited %v for %s; p2pchat %s; the screen:\n%s", waitTimeout, what, exit, s.screen())
		}
	}
}

// prompt is the prompt with line typed after it.
func (s *session) prompt(line string) string { return s.name + "> " + line }

// waitPrompt waits until the cursor's row is the prompt with line typed,
// the cursor at its end, and returns the screen.
func (s *session) waitPrompt(line string) snapshot {
	s.t.Helper()
	want := s.prompt(line)
	return s.waitScreen(func(sn snapshot) bool {
		return sn.row() == strings.TrimRight(want, " ") && sn.cursor.X == columns(want)
	}, fmt.Sprintf("the prompt line %q with the cursor at its end", want))
}

// typeKeys writes s to the terminal as if typed.
func (s *session) typeKeys(keys string) {
	s.t.Helper()
	if _, err := io.WriteString(s.ptmx, keys); err != nil {
		s.t.Fatalf("typing %q: %v", keys, err)
	}
}

// waitExit waits for the process to exit and checks its status.
func (s *session) waitExit(status int) {
	s.t.Helper()
	select {
	case <-s.exited:
	case <-time.After(waitTimeout):
		s.t.Fatalf("p2pchat still running after %v; the screen:\n%s", waitTimeout, s.screen())
	}
	var ee *exec.ExitError
	got := 0
	switch {
	case errors.As(s.waitErr, &ee):
		got = ee.ExitCode()
	case s.waitErr != nil:
		s.t.Fatalf("waiting for p2pchat: %v", s.waitErr)
	}
	if got != status {
		<-s.readEnd
		s.t.Fatalf("p2pchat exited with status %d, want %d; the screen:\n%s", got, status, s.screen())
	}
}

// stty is what `stty -a` says of the session's terminal, now.
func (s *session) stty() string {
	s.t.Helper()
	tty, err := os.OpenFile(s.ttyName, os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		s.t.Fatalf("opening %s: %v", s.ttyName, err)
	}
	defer tty.Close()
	cmd := exec.Command("stty", "-a")
	cmd.Stdin = tty
	out, err := cmd.CombinedOutput()
	if err != nil {
		s.t.Fatalf("stty -a on %s: %v\n%s", s.ttyName, err, out)
	}
	return string(out)
}

// sttyFlags reports which of flags are on (true) or off (false) in what
// stty -a printed.
func sttyFlags(out string, flags ...string) map[string]bool {
	on := make(map[string]bool)
	for _, f := range strings.Fields(out) {
		for _, want := range flags {
			switch f {
			case want:
				on[want] = true
			case "-" + want:
				on[want] = false
			}
		}
	}
	return on
}

// running fails the test if the process has exited.
func (s *session) running() {
	s.t.Helper()
	select {
	case <-s.exited:
		s.t.Fatalf("p2pchat exited (%v); the screen:\n%s", s.waitErr, s.screen())
	default:
	}
}
