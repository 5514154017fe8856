package shell

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
)

// plainUI reads lines from any reader and writes plain lines: messages to
// out, notices to errOut. It is used when stdin is not a terminal.
type plainUI struct {
	in     chan input
	out    *bufio.Writer // messages, written out by flush
	errOut io.Writer
	mu     sync.Mutex // one line at a time
}

// plainOutBuffer holds the messages shown between two flushes; the shell
// flushes at least every maxUnflushed messages, which always fit.
const plainOutBuffer = 256 << 10

// maxPlainLine bounds a line read from a pipe; longer lines are refused
// whole without being held in memory.
const maxPlainLine = 64 << 10

func newPlainUI(r io.Reader, out, errOut io.Writer) *plainUI {
	u := &plainUI{in: make(chan input, 1024), out: bufio.NewWriterSize(out, plainOutBuffer), errOut: errOut}
	go u.read(bufio.NewReaderSize(r, maxPlainLine))
	return u
}

// read runs until the input ends. It may outlive the shell, blocked on a
// read from stdin; the process exit ends it.
// Lines are read ahead into a buffered channel; the shell takes them in
// order.
func (u *plainUI) read(br *bufio.Reader) {
	defer close(u.in)
	for {
		line, err := readLine(br)
		if errors.Is(err, errLineTooLong) {
			u.in <- input{err: errLineTooLong} // refused whole: a cut line must not act
			continue
		}
		if err != nil {
			if line != "" {
				u.in <- input{text: line}
			}
			u.in <- input{err: io.EOF}
			return
		}
		u.send(input{text: line})
	}
}

// send hands a line to the shell. When the shell was idle, it goes on at
// once: otherwise it would wait, readied on this thread, until this
// goroutine blocks on the next read. (BenchmarkWarmLatency: see the hint in
// network's receive; with the three hints p50 is 1.33-1.44 times the
// durable relay's, without them 1.52-1.55.)
func (u *plainUI) send(in input) {
	idle := len(u.in) == 0
	u.in <- in
	if idle {
		runtime.Gosched()
	}
}

var errLineTooLong = fmt.Errorf("line too long: over %d KiB; nothing was done with it", maxPlainLine>>10)

// readLine reads a line without its "\n" or "\r\n". A line over the buffer
// size is consumed to its end and returned cut, with errLineTooLong.
func readLine(br *bufio.Reader) (string, error) {
	b, err := br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		line := string(b)
		for errors.Is(err, bufio.ErrBufferFull) {
			_, err = br.ReadSlice('\n')
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		return line, errLineTooLong
	}
	line := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if err == nil {
		return line, nil
	}
	return line, err
}

func (u *plainUI) lines() <-chan input { return u.in }

func (u *plainUI) next() {}

func (u *plainUI) setPrompt(string) {}

func (u *plainUI) keep(string) {}

func (u *plainUI) setBell(bool) {}

func (u *plainUI) width() int { return 0 }

func (u *plainUI) message(line string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.out.WriteString(line)
	u.out.WriteByte('\n')
}

func (u *plainUI) notice(line string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	fmt.Fprintln(u.errOut, line)
}

func (u *plainUI) flush() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.out.Flush()
}

func (u *plainUI) close() { u.flush() }
