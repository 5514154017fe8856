package shell

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/chzyer/readline"
)

// terminalUI runs readline on the process's terminal. readline owns the
// screen: everything is written through it, one Write per line, so the
// prompt and the half-typed line are redrawn below what was printed.
//
// One goroutine calls Readline, once per call to next. The shell's loop
// prints from its own goroutine, which is safe while Readline is waiting for
// keys (readline then clears the prompt, prints, and redraws it) and while no
// Readline is running (nothing to redraw). Between those two states there are
// short windows where readline's own check gets it wrong (its issue #220): a
// Readline that has printed its prompt but not yet started reading, and one
// that is handling Enter. print waits those windows out; they last
// microseconds.
type terminalUI struct {
	rl       *readline.Instance
	out      io.Writer
	in       chan input
	ready    chan struct{}
	granted  bool        // loop only: a Readline is running or about to
	returned atomic.Bool // the running Readline has returned
	state    *readline.State
}

func newTerminalUI(cfg Config, c completer) (*terminalUI, error) {
	if cfg.HistoryFile != "" {
		// readline creates its history file world-readable; create it
		// owner-only first, and tighten one that exists.
		f, err := os.OpenFile(cfg.HistoryFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("cannot open the history file: %w", err)
		}
		f.Close()
		if err := os.Chmod(cfg.HistoryFile, 0o600); err != nil {
			return nil, fmt.Errorf("cannot protect the history file: %w", err)
		}
	}
	state, _ := readline.GetState(int(os.Stdin.Fd()))
	rl, err := readline.NewEx(&readline.Config{
		Prompt:            cfg.Name + "> ",
		HistoryFile:       cfg.HistoryFile,
		HistorySearchFold: true,
		AutoComplete:      c,
		InterruptPrompt:   "^C",
		EOFPrompt:         "",
	})
	if err != nil {
		return nil, fmt.Errorf("cannot start the line editor: %w", err)
	}
	t := &terminalUI{
		rl:    rl,
		out:   os.Stdout,
		in:    make(chan input),
		ready: make(chan struct{}),
		state: state,
	}
	go t.read()
	return t, nil
}

func (t *terminalUI) read() {
	for range t.ready {
		line, err := t.rl.Readline()
		t.returned.Store(true)
		switch {
		case errors.Is(err, readline.ErrInterrupt):
			err = errInterrupt
		case errors.Is(err, io.EOF):
			t.in <- input{err: io.EOF}
			return // readline blocks on any Readline after EOF
		}
		t.in <- input{text: line, err: err}
	}
}

func (t *terminalUI) lines() <-chan input { return t.in }

func (t *terminalUI) next() {
	t.returned.Store(false)
	t.granted = true
	t.ready <- struct{}{}
}

func (t *terminalUI) message(line string) { t.print(line) }
func (t *terminalUI) flush()              {}
func (t *terminalUI) notice(line string)  { t.print(line) }

// settleWait bounds the wait for readline to settle; see terminalUI. The
// wait is for correctness, not speed (readline's pitfall #220: a Write
// while it is between two Readline calls garbles the prompt); the 20 µs
// between looks only bound how late a line lands on a terminal, which no
// benchmark measures: they all run piped.
const settleWait = time.Second

func (t *terminalUI) print(line string) {
	b := []byte(line + "\n")
	if t.granted {
		deadline := time.Now().Add(settleWait)
		for !t.returned.Load() && !t.rl.Terminal.IsReading() && time.Now().Before(deadline) {
			time.Sleep(20 * time.Microsecond)
		}
		if !t.returned.Load() {
			t.rl.Write(b) // clears the prompt, prints, redraws
			return
		}
		t.granted = false // the line is on its way to the loop
	}
	t.out.Write(b)
}

// close gives the terminal back as it was. readline's Close can hang while
// a Readline is pending (its issue #217), so it gets a moment, and the
// terminal state saved at start is restored regardless.
func (t *terminalUI) close() {
	pending := t.granted && !t.returned.Load()
	done := make(chan struct{})
	go func() {
		t.rl.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(500 * time.Millisecond):
	}
	if t.state != nil {
		readline.Restore(int(os.Stdin.Fd()), t.state)
	}
	if pending {
		t.out.Write([]byte("\n")) // leave the shell's next prompt a line of its own
	}
}

// IsTerminal reports whether both stdin and stdout are terminals, the
// condition for the interactive shell.
func IsTerminal() bool {
	return readline.IsTerminal(int(os.Stdin.Fd())) && readline.IsTerminal(int(os.Stdout.Fd()))
}
