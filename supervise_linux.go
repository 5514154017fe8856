package main

import "syscall"

// childAttr makes the child hear of its parent's death: a parent killed
// with SIGKILL cannot restore the terminal, but the child, sent SIGHUP,
// leaves as on any hang-up and restores it itself.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGHUP}
}
