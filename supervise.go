package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"syscall"

	"golang.org/x/term"
)

// supervisedEnv marks the child of a supervising parent, so that it runs
// the chat instead of supervising again.
const supervisedEnv = "P2PCHAT_SUPERVISED"

// forwarded are the signals the supervising parent passes on to the child:
// those that would otherwise end the parent, and with it the terminal's
// restoration.
var forwarded = []os.Signal{
	syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2,
}

// supervise runs p2pchat again as a child on the same terminal and gives
// the terminal back as it found it, whatever happens to the child. readline
// puts the terminal in raw mode; a panic in any goroutine of the child
// (readline's own included, where nothing can recover it) ends the process
// without restoring it, and so does a signal it does not catch. The parent
// saves the state first, waits, restores it, and exits with the child's
// status. It reports false, without running anything, when it cannot start
// the child; p2pchat then runs in this process.
func supervise(args []string) (code int, ok bool) {
	fd := int(os.Stdin.Fd())
	state, err := term.GetState(fd)
	if err != nil {
		return 0, false
	}
	exe, err := os.Executable()
	if err != nil {
		return 0, false
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), supervisedEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.SysProcAttr = childAttr()
	// Caught before the child exists, so that none is lost in between;
	// until it starts there is nothing to forward them to.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwarded...)
	if err := cmd.Start(); err != nil {
		signal.Stop(sigs)
		return 0, false
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for {
		select {
		case sig := <-sigs:
			cmd.Process.Signal(sig)
		case err := <-done:
			signal.Stop(sigs)
			term.Restore(fd, state)
			code := exitStatus(err)
			if code != exitOK && term.IsTerminal(int(os.Stdout.Fd())) {
				// The child may have died between turning line
				// wrapping off and on again (see shell's print).
				os.Stdout.WriteString(autowrapOn)
			}
			return code, true
		}
	}
}

// autowrapOn turns the terminal's line wrapping (DECAWM) back on.
const autowrapOn = "\x1b[?7h"

// exitStatus is the status to exit with after the child's Wait returned
// err: the child's own, or 128 plus the number of the signal that killed
// it, as shells report it.
func exitStatus(err error) int {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		if err != nil {
			fmt.Fprintln(os.Stderr, "p2pchat:", err)
			return exitError
		}
		return exitOK
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ee.ExitCode()
}
