package shell

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"
)

type command struct {
	name, args, help string
	run              func(s *Shell, args []string) (quit bool)
}

// commands are the lines that start with '/'. Declared in init because
// /help lists them.
var commands []command

func init() {
	commands = []command{
		{"help", "", "show this help", (*Shell).help},
		{"peers", "", "list your friends and the connections with them", (*Shell).peers},
		{"quit", "", "leave p2pchat (Ctrl-D does the same)", func(*Shell, []string) bool { return true }},
	}
}

func (s *Shell) help([]string) bool {
	var b strings.Builder
	fmt.Fprintf(&b, "Write friend/message to send a message, for example %s/hello.\n", example(s.cfg.Friends))
	fmt.Fprintf(&b, "Tab completes a friend's name; Up and Down go through what you typed before.\n")
	for _, c := range commands {
		fmt.Fprintf(&b, "  /%-8s %s\n", c.name+" "+c.args, c.help)
	}
	s.ui.notice(strings.TrimSuffix(b.String(), "\n"))
	return false
}

func (s *Shell) peers([]string) bool {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FRIEND\tADDRESS\tOUR CONNECTION\tTHEIRS\tUNACKNOWLEDGED")
	for _, p := range s.cfg.Net.Peers() {
		ours := "none"
		if p.Connected {
			ours = "open, idle " + p.Idle.Truncate(time.Second).String()
		}
		theirs := "none"
		if p.Inbound > 0 {
			theirs = "open"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\n", p.Name, p.Addr(), ours, theirs, p.Pending)
	}
	tw.Flush()
	s.ui.notice(strings.TrimSuffix(b.String(), "\n"))
	return false
}
