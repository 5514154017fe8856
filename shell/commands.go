package shell

import (
	"fmt"
	"slices"
	"strconv"

	"p2pchat/network"
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
		{"peers", "", "list your friends: online or when last seen, messages waiting, identities", (*Shell).peers},
		{"who", "", "list the friends online now", (*Shell).who},
		{"history", "FRIEND [N]", "show the last N (default 20) messages with FRIEND, both ways; /history @GROUP [N], those of a group", (*Shell).history},
		{"whoami", "", "show your name and identity, for friends to pin", (*Shell).whoami},
		{"forget", "NAME", "forget the identity pinned on first use for NAME; the next waits for /accept", (*Shell).forget},
		{"accept", "NAME ID", "pin ID for NAME after /forget, once NAME's /whoami shows it to you", (*Shell).accept},
		{"to", "[FRIEND|@GROUP]", "send every line to FRIEND or @GROUP without writing NAME/; /to alone ends it", (*Shell).talkTo},
		{"time", "on|off", "start every line with the time (HH:MM), or not; kept for the next run", (*Shell).setTime},
		{"bell", "on|off", "ring the bell for a message while you are not typing, or not; kept", (*Shell).setBell},
		{"quit", "", "leave p2pchat (Ctrl-D does the same)", func(*Shell, []string) bool { return true }},
	}
}

func (s *Shell) help([]string) bool {
	var b strings.Builder
	fmt.Fprintf(&b, "Write friend/message to send a message, for example %s/hello; a message holds at most %d characters.\n", example(s.cfg.Friends), network.MaxMessageRunes)
	fmt.Fprintf(&b, "Write @group/message to send it to every member but you; your groups are %s.\n", strings.Replace(groupList(s.groupNames()), "@all", "@all (every friend)", 1))
	for _, c := range commands {
		fmt.Fprintf(&b, "  /%-18s %s\n", c.name+" "+c.args, c.help)
	}
	for i, keys := range helpKeys {
		head := "Keys: "
		if i > 0 {
			head = "      "
		}
		end := ";"
		if i == len(helpKeys)-1 {
			end = "."
		}
		fmt.Fprintf(&b, "%s%s%s\n", head, strings.Join(keys, "; "), end)
	}
	s.ui.notice(strings.TrimSuffix(b.String(), "\n"))
	return false
}

// helpKeys are the keys /help lists, with what they do, a line of them
// each.
var helpKeys = [][]string{
	{"Tab completes a name, a command or its friend", "Up and Down recall what you typed"},
	{"Ctrl-R searches it", "Home and End go to the ends of the line", "Ctrl-L clears the screen"},
	{"Ctrl-C clears the line", "Ctrl-D on an empty line leaves"},
}

// defaultHistory is how many messages /history shows without N.
const defaultHistory = 20

func (s *Shell) history(args []string) bool {
	n := defaultHistory
	switch {
	case len(args) == 2:
		v, err := strconv.Atoi(args[1])
		if err != nil || v < 1 {
			s.problem(fmt.Sprintf("bad count %q: /history FRIEND [N], N a positive number", Sanitize(args[1])))
			return false
		}
		n = v
	case len(args) != 1:
		s.problem("usage: /history FRIEND [N]")
		return false
	}
	friend := args[0]
	if g, ok := strings.CutPrefix(friend, "@"); ok {
		s.groupHistory(g, n)
		return false
	}
	if !slices.Contains(s.cfg.Friends, friend) {
		s.problem(Sanitize(unknownFriend(friend, s.cfg.Friends).Error()))
		return false
	}
	recs, err := s.cfg.Net.History(friend, n)
	if err != nil {
		s.problem(fmt.Sprintf("cannot read the history with %s: %v", friend, err))
		return false
	}
	if len(recs) == 0 {
		s.ui.notice(fmt.Sprintf("No messages with %s yet.", friend))
		return false
	}
	var b strings.Builder
	for _, r := range recs {
		group := ""
		if r.Group != "" {
			group = " (@" + r.Group + ")"
		}
		if r.Outgoing {
			state := "delivered"
			switch {
			case r.Delivered:
			case len(r.CarriedBy) > 0:
				state = "waiting; carried by " + strings.Join(r.CarriedBy, ", ")
			default:
				state = "waiting"
			}
			fmt.Fprintf(&b, "%s  you → %s%s: %s  [%s]\n", when(r.Sent), s.paint.Name(friend), group, Sanitize(r.Text), state)
		} else {
			fmt.Fprintf(&b, "%s  %s → you%s: %s\n", when(r.At), s.paint.Name(friend), group, Sanitize(r.Text))
		}
	}
	s.ui.notice(strings.TrimSuffix(b.String(), "\n"))
	return false
}

// groupHistory shows the last n messages of group (without '@'): ours
// once each, with who has it, and the members'.
func (s *Shell) groupHistory(group string, n int) {
	if group != network.AllGroup && !slices.Contains(s.groupNames(), group) {
		s.problem(Sanitize(unknownGroup("@"+group, s.groupNames()).Error()))
		return
	}
	recs, err := s.cfg.Net.GroupHistory(group, n)
	if err != nil {
		s.problem(fmt.Sprintf("cannot read the history of @%s: %v", group, err))
		return
	}
	if len(recs) == 0 {
		s.ui.notice(fmt.Sprintf("No messages in @%s yet.", group))
		return
	}
	var b strings.Builder
	for _, r := range recs {
		if r.From != "" {
			fmt.Fprintf(&b, "%s  %s → @%s: %s\n", when(r.At), s.paint.Name(r.From), group, Sanitize(r.Text))
			continue
		}
		state := "delivered"
		if len(r.Delivered) < len(r.To) {
			var waiting []string
			for _, m := range r.To {
				if !slices.Contains(r.Delivered, m) {
					waiting = append(waiting, m)
				}
			}
			state = fmt.Sprintf("delivered to %d of %d; waiting: %s", len(r.Delivered), len(r.To), strings.Join(waiting, ", "))
		}
		fmt.Fprintf(&b, "%s  you → @%s: %s  [%s]\n", when(r.Sent), group, Sanitize(r.Text), state)
	}
	s.ui.notice(strings.TrimSuffix(b.String(), "\n"))
}

func (s *Shell) whoami([]string) bool {
	s.ui.notice(fmt.Sprintf("You are %s, identity %s", s.cfg.Name, s.cfg.Net.ID()))
	return false
}

func (s *Shell) talkTo(args []string) bool {
	switch {
	case len(args) == 0:
		s.to = ""
		s.updatePrompt()
		s.ui.notice("Lines need a friend/ again.")
	case len(args) > 1:
		s.problem("usage: /to FRIEND or /to @GROUP, or /to alone to end it")
	case args[0] == s.cfg.Name:
		s.problem(network.ErrSelf.Error())
	case strings.HasPrefix(args[0], "@"):
		if g := args[0][1:]; g != network.AllGroup && !slices.Contains(s.groupNames(), g) {
			s.problem(Sanitize(unknownGroup(args[0], s.groupNames()).Error()))
			return false
		}
		s.to = args[0]
		s.updatePrompt()
		s.ui.notice(fmt.Sprintf("Every line now goes to %s; NAME/ still writes to NAME, and /to alone ends it.", s.to))
	case !slices.Contains(s.cfg.Friends, args[0]):
		s.problem(Sanitize(unknownFriend(args[0], s.cfg.Friends).Error()))
	default:
		s.to = args[0]
		s.updatePrompt()
		s.ui.notice(fmt.Sprintf("Every line now goes to %s; NAME/ still writes to NAME, and /to alone ends it.", s.to))
	}
	return false
}

func (s *Shell) forget(args []string) bool {
	if len(args) != 1 {
		s.problem("usage: /forget NAME")
		return false
	}
	if !slices.Contains(s.cfg.Friends, args[0]) {
		s.problem(Sanitize(unknownFriend(args[0], s.cfg.Friends).Error()))
		return false
	}
	id, err := s.cfg.Net.Forget(args[0])
	if err != nil {
		s.problem(Sanitize(err.Error()))
		return false
	}
	s.ui.notice(fmt.Sprintf("Forgot %s's identity %s and closed its connections. A new identity for %s is not pinned by itself: check it with %s (their /whoami), then /accept %s ID.", args[0], id, args[0], args[0], args[0]))
	return false
}

func (s *Shell) accept(args []string) bool {
	if len(args) != 2 {
		s.problem("usage: /accept NAME ID")
		return false
	}
	id, err := network.ParseID(args[1])
	if err != nil {
		s.problem(Sanitize(fmt.Sprintf("bad identity %q: %v", args[1], err)))
		return false
	}
	if err := s.cfg.Net.Accept(args[0], id); err != nil {
		s.problem(Sanitize(err.Error()))
		return false
	}
	s.ui.notice(fmt.Sprintf("Pinned identity %s for %s.", id, args[0]))
	return false
}

func (s *Shell) peers([]string) bool {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FRIEND\tADDRESS\tSEEN\tWAITING")
	peers := s.cfg.Net.Status()
	now := time.Now()
	for _, p := range peers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", p.Name, p.Addr(), seenWords(p, now), p.Pending)
	}
	fmt.Fprintln(tw, "\nFRIEND\tIDENTITY")
	for _, p := range peers {
		if p.Pinned == network.NotPinned {
			fmt.Fprintf(tw, "%s\t%s\n", p.Name, p.Pinned)
		} else {
			fmt.Fprintf(tw, "%s\t%s (%s)\n", p.Name, p.ID, p.Pinned)
		}
	}
	fmt.Fprintln(tw, "\nFRIEND\tREACHED")
	for _, p := range peers {
		fmt.Fprintf(tw, "%s\t%s\n", p.Name, reached(p))
	}
	fmt.Fprintln(tw, "\nGROUP\tMEMBERS")
	fmt.Fprintf(tw, "@%s\tevery friend\n", network.AllGroup)
	for _, g := range s.cfg.Groups {
		fmt.Fprintf(tw, "@%s\t%s\n", g.Name, strings.Join(g.Members, ", "))
	}
	tw.Flush()
	s.ui.notice(strings.TrimSuffix(b.String(), "\n"))
	return false
}

// reached says how a friend is reached now: directly, through the friends
// who carry what waits for them, or not at the moment; and what this
// instance carries for them.
func reached(p network.FriendStatus) string {
	var parts []string
	switch {
	case p.Connected || p.Inbound > 0:
		parts = append(parts, "direct")
	case len(p.CarriedBy) > 0:
		parts = append(parts, "through "+strings.Join(p.CarriedBy, ", "))
	case p.Offline:
		parts = append(parts, "not at the moment")
	default:
		parts = append(parts, "direct when there is something to send")
	}
	if !p.Card {
		parts = append(parts, "no card yet, so nobody can carry for them")
	} else if !p.Reachable {
		parts = append(parts, "behind a NAT")
	}
	if p.Carrying > 0 {
		parts = append(parts, fmt.Sprintf("carrying %d message(s) for %s", p.Carrying, p.Name))
	}
	return strings.Join(parts, "; ")
}
