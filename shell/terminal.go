package shell

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"syscall"

	"github.com/ergochat/readline"
	"golang.org/x/term"
)

// terminalUI runs readline on the process's terminal. readline owns the
// screen: everything is written through it, one Write per line, so the
// prompt and the half-typed line are redrawn below what was printed.
//
// One goroutine calls Readline, once per call to next; the shell's loop
// prints from its own. readline (ergochat's fork) takes a lock around
// printing its prompt and around every Write, so a Write at any moment
// either lands above the prompt or, with no Readline running, is printed
// as it is. (chzyer/readline had windows where that went wrong, its issue
// #220, which this type used to wait out.)
type terminalUI struct {
	rl       *readline.Instance
	out      io.Writer
	in       chan input
	ready    chan struct{}
	granted  bool        // loop only: a Readline is running or about to
	returned atomic.Bool // the running Readline has returned
	state    *term.State
	marker   string // continuation, painted

	typing  atomic.Bool // the input line holds something
	bell    bool        // loop only: a message rings the bell while the line is empty
	initial string      // loop only: what the next line starts with (keep)
	start   chan string // what each Readline starts with, handed with ready
}

func newTerminalUI(cfg Config, c completer) (*terminalUI, error) {
	if cfg.HistoryFile != "" {
		// readline creates its history file world-readable; create it
		// owner-only first, and tighten one that exists.
		f, err := os.OpenFile(cfg.HistoryFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("cannot open the history file: %w", err)
		}
		f.Close()
		if err := os.Chmod(cfg.HistoryFile, 0o600); err != nil {
			return nil, fmt.Errorf("cannot protect the history file: %w", err)
		}
	}
	state, _ := term.GetState(int(os.Stdin.Fd()))
	t := &terminalUI{
		out:    os.Stdout,
		in:     make(chan input),
		ready:  make(chan struct{}),
		start:  make(chan string, 1),
		state:  state,
		marker: newPainter(cfg.Color).Faint(continuation),
	}
	rl, err := readline.NewFromConfig(&readline.Config{
		Prompt:            cfg.Name + "> ",
		HistoryFile:       cfg.HistoryFile,
		HistorySearchFold: true,
		AutoComplete:      c,
		InterruptPrompt:   "^C",
		EOFPrompt:         "",
		Listener:          t.listen,
	})
	if err != nil {
		return nil, fmt.Errorf("cannot start the line editor: %w", err)
	}
	t.rl = rl
	go t.read()
	return t, nil
}

func (t *terminalUI) read() {
	for range t.ready {
		line, err := t.rl.ReadLineWithDefault(<-t.start)
		t.returned.Store(true)
		t.typing.Store(false)
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
	t.typing.Store(t.initial != "")
	t.start <- t.initial
	t.initial = ""
	t.ready <- struct{}{}
}

// listen is readline's Listener: it is called with the line after every
// key but Enter, and with nil when a Readline starts.
func (t *terminalUI) listen(line []rune, _ int, key rune) ([]rune, int, bool) {
	if line != nil || key != 0 {
		t.typing.Store(len(line) > 0)
	}
	return nil, 0, false
}

func (t *terminalUI) keep(text string) { t.initial = text }

func (t *terminalUI) setBell(on bool) { t.bell = on }

func (t *terminalUI) width() int {
	w, _, err := term.GetSize(int(os.Stdout.Fd()))
	if err != nil {
		return 0
	}
	return w
}

// setPrompt changes the prompt, and redraws it if a Readline is running.
func (t *terminalUI) setPrompt(p string) {
	t.rl.SetPrompt(p)
	t.rl.Refresh()
}

// message rings the bell when nothing is typed.
func (t *terminalUI) message(line string) {
	if t.bell && !t.typing.Load() {
		t.write("\a", line)
		return
	}
	t.print(line)
}
func (t *terminalUI) flush()             {}
func (t *terminalUI) notice(line string) { t.print(line) }

// print writes line above the prompt, which is redrawn. A line longer than
// the terminal is wide is wrapped here, at its width now, each screen line
// after the first starting with the continuation marker (see wrap).
func (t *terminalUI) print(line string) { t.write("", line) }

// write is print with control characters before the line, in the same
// Write: readline takes what follows the last newline written for the
// prompt's column, so nothing may come after it.
func (t *terminalUI) write(controls, line string) {
	if w, _, err := term.GetSize(int(os.Stdout.Fd())); err == nil {
		line = wrap(line, w, t.marker, stringColumns(continuation))
	}
	t.rl.Write([]byte(controls + autowrapOff + line + autowrapOn + "\n"))
}

// close gives the terminal back as it was. A Readline still pending (the
// shell stops on a signal while the person types) is left alone: readline's
// Close would end it as if Enter were pressed, taking the half-typed line
// for one to send, and the process is about to exit anyway. The terminal
// state saved at start is restored in every case.
func (t *terminalUI) close() {
	pending := t.granted && !t.returned.Load()
	if !pending {
		t.rl.Close()
	}
	if t.state != nil {
		term.Restore(int(os.Stdin.Fd()), t.state)
	}
	if pending {
		t.out.Write([]byte("\n")) // leave the shell's next prompt a line of its own
	}
}

// IsTerminal reports whether both stdin and stdout are terminals, the
// condition for the interactive shell.
func IsTerminal() bool {
	return term.IsTerminal(int(os.Stdin.Fd())) && term.IsTerminal(int(os.Stdout.Fd()))
}
