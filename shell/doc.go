// Package shell is p2pchat's user interface: it reads what the person types,
// sends messages through the network, and renders what the network reports.
//
// It knows nothing about sockets. Everything meets in one place, the loop in
// Run: a select over typed lines, network events and the context. On a
// terminal, github.com/ergochat/readline (the maintained fork of
// chzyer/readline) owns the screen: a message that
// arrives while the person is typing is printed above the prompt and the
// half-typed line is redrawn as it was. On anything else (a pipe, a file)
// lines are read plainly and messages are written to the output without a
// prompt or colour, so the program can be scripted.
//
// Text that came from the network is never written to the terminal as is:
// control characters, escape sequences and invalid UTF-8 are shown
// neutralised (see Sanitize).
package shell
