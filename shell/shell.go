package shell

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"p2pchat/network"
)

// Network is what the shell needs of the network: a *network.Node.
type Network interface {
	Send(to, text string) (uint64, error)
	SendGroup(group, text string) ([]string, error)
	Status() []network.FriendStatus
	Events() <-chan network.Event
	ID() network.ID
	Forget(name string) (network.ID, error)
	Accept(name string, id network.ID) error
	History(friend string, n int) ([]network.HistoryEntry, error)
	GroupHistory(group string, n int) ([]network.GroupEntry, error)
	MarkShown(m network.MessageReceived)
}

// Config configures a Shell.
type Config struct {
	Name    string          // the person's own name, shown in the prompt
	Friends []string        // everyone the person can write to, in table order
	Groups  []network.Group // the table's groups, @all not among them
	Net     Network

	// Terminal selects readline on the process's terminal (stdin and
	// stdout); otherwise In is read line by line, messages go to Out and
	// notices to Err.
	Terminal    bool
	In          io.Reader
	Out, Err    io.Writer
	HistoryFile string // terminal only; "" keeps no history
	Color       bool
	Greeting    string // a first notice, if any
	// ExitWhenDone ends Run at the end of piped input, once everything
	// sent is delivered or exitWait has passed (then with ErrUndelivered);
	// otherwise Run keeps receiving until its context ends.
	ExitWhenDone bool
	// Settings are the person's, as kept (the zero value has no times and
	// no bell); every change made with /time or /bell is handed to
	// SaveSettings, if set, to keep for the next run.
	Settings     Settings
	SaveSettings func(Settings) error
}

// Shell is one person's session.
type Shell struct {
	cfg     Config
	paint   painter
	ui      ui
	refused refusals // to keep floods to a line or two
	to      string   // the friend lines go to without a NAME/ (/to), if any

	settings Settings
	unacked  unacked // terminal only: messages sent, not yet acknowledged
	prompt   string  // terminal only: the prompt shown

	lineNo int // lines read so far
	inLine int // the line being handled, for problems about it; 0 between lines

	shown     map[string]network.MessageReceived // last message shown per friend, not yet marked
	warned    map[string]bool                    // identity warnings given, by name and identity
	carried   map[sentKey]bool                   // messages said to be carried
	unflushed int                                // messages shown since the last settle
}

// maxUnflushed bounds the messages shown before they are flushed and marked
// shown, however busy the loop is.
const maxUnflushed = 128

// ui is where lines come from and where output goes: readline on a
// terminal, or plain streams.
type ui interface {
	// lines delivers what the person typed. After each line, the shell
	// calls next when it is ready for another.
	lines() <-chan input
	next()
	// message prints a line that is part of the conversation; notice prints
	// one about the program itself. Each call is one whole line.
	message(line string)
	notice(line string)
	// flush makes sure every message is out of the process.
	flush()
	// setPrompt changes the prompt, where there is one.
	setPrompt(p string)
	// keep makes the next line start with text, for editing, where lines
	// are edited.
	keep(text string)
	// setBell turns on or off the bell that a message rings when it
	// arrives while nothing is typed, where there is a bell.
	setBell(on bool)
	// width is the width of the screen in columns; 0 when lines are
	// not broken to fit.
	width() int
	close()
}

// input is one typed line, or why there is none: io.EOF at the end of input,
// errInterrupt for Ctrl-C.
type input struct {
	text string
	err  error
}

var errInterrupt = errors.New("interrupted")

// New prepares a shell; on a terminal it takes over the screen.
func New(cfg Config) (*Shell, error) {
	s := &Shell{cfg: cfg, paint: newPainter(cfg.Color), refused: refusals{hosts: make(map[string]bool)}, shown: make(map[string]network.MessageReceived), warned: make(map[string]bool), carried: make(map[sentKey]bool), settings: cfg.Settings}
	var u ui
	if cfg.Terminal {
		t, err := newTerminalUI(cfg, s.completer())
		if err != nil {
			return nil, err
		}
		u = t
	} else {
		u = newPlainUI(cfg.In, cfg.Out, cfg.Err)
	}
	u.setBell(s.settings.Bell)
	s.ui = stampUI{ui: u, on: &s.settings.Time, now: time.Now}
	return s, nil
}

// completer completes friends' and groups' names at the start of a line,
// commands, the friend that /forget and /accept take, and the friend or
// group that /history and /to take.
func (s *Shell) completer() completer {
	c := completer{friends: s.cfg.Friends, groups: []string{"@" + network.AllGroup}}
	for _, g := range s.cfg.Groups {
		c.groups = append(c.groups, "@"+g.Name)
	}
	both := append(s.cfg.Friends[:len(s.cfg.Friends):len(s.cfg.Friends)], c.groups...)
	c.args = map[string][]string{
		"history": both,
		"forget":  s.cfg.Friends,
		"accept":  s.cfg.Friends,
		"to":      both,
	}
	for _, cmd := range commands {
		c.commands = append(c.commands, cmd.name)
	}
	return c
}

// Run is the shell's event loop: the one place where typed lines, network
// events and shutdown meet. It returns nil when the person quits (/quit,
// Ctrl-D) or ctx is done, and restores the terminal before returning.
func (s *Shell) Run(ctx context.Context) error {
	defer s.ui.close()
	defer s.settle()
	lines := s.ui.lines()
	events := s.cfg.Net.Events()
	if s.cfg.Greeting != "" {
		s.ui.notice(s.paint.Faint(s.cfg.Greeting))
	}
	for _, p := range s.cfg.Net.Status() {
		if p.Pending > 0 {
			s.ui.notice(s.paint.Faint(fmt.Sprintf("%d message(s) to %s wait from before; they go out as soon as %s can be reached.", p.Pending, p.Name, p.Name)))
		}
	}
	s.updatePrompt()
	s.ui.next()
	for {
		select {
		case <-ctx.Done():
			return nil
		case in, ok := <-lines:
			if !ok {
				// End of piped input: keep receiving until told to stop.
				lines = nil
				continue
			}
			switch {
			case errors.Is(in.err, io.EOF):
				if s.cfg.Terminal {
					s.finish(ctx, events, quitWait) // Ctrl-D on an empty line
					return nil
				}
				if s.cfg.ExitWhenDone {
					if s.finish(ctx, events, exitWait) > 0 {
						return ErrUndelivered
					}
					return nil
				}
				lines = nil
				continue
			case errors.Is(in.err, errInterrupt):
				// Ctrl-C: readline has cleared the line.
			case errors.Is(in.err, errLineTooLong):
				s.lineNo++
				s.inLine = s.lineNo
				s.problem(in.err.Error())
				s.inLine = 0
			case in.err != nil:
				return in.err
			default:
				s.lineNo++
				s.inLine = s.lineNo
				quit := s.handle(in.text)
				s.inLine = 0
				if quit {
					s.finish(ctx, events, quitWait)
					return nil
				}
			}
			s.ui.next()
		case <-s.refusalsDue():
			s.summariseRefusals()
		case <-s.unackedDue():
			s.sayUnacked()
		case ev, ok := <-events:
			if !ok {
				return nil
			}
			s.render(ev)
			s.acked(ev)
			if m, ok := ev.(network.MessageReceived); ok {
				s.shown[m.From] = m
				s.unflushed++
			}
			if len(events) == 0 || s.unflushed >= maxUnflushed {
				s.settle()
			}
		}
	}
}

// quitWait is how long /quit and Ctrl-D wait for messages in flight to be
// acknowledged before they leave; exitWait, how long the end of piped
// input does with ExitWhenDone.
const (
	quitWait = 2 * time.Second
	exitWait = 10 * time.Second
)

// ErrUndelivered is Run's error when it ends, with ExitWhenDone, while
// messages still wait for friends.
var ErrUndelivered = errors.New("messages are still waiting to be delivered")

// finish waits up to wait for the messages that wait for friends to be
// delivered, showing what comes meanwhile, then says in one line what
// still waits and for whom, and returns how many do.
func (s *Shell) finish(ctx context.Context, events <-chan network.Event, wait time.Duration) int {
	waiting := func() (n int, line string) {
		var parts []string
		for _, f := range s.cfg.Net.Status() {
			if f.Pending > 0 {
				n += f.Pending
				parts = append(parts, fmt.Sprintf("%d to %s", f.Pending, f.Name))
			}
		}
		return n, strings.Join(parts, ", ")
	}
	n, _ := waiting()
	if n == 0 {
		return 0
	}
	t := time.NewTimer(wait)
	defer t.Stop()
wait:
	for n > 0 {
		select {
		case <-ctx.Done():
			break wait
		case <-t.C:
			break wait
		case ev, ok := <-events:
			if !ok {
				break wait
			}
			s.render(ev)
			if m, ok := ev.(network.MessageReceived); ok {
				s.shown[m.From] = m
				s.unflushed++
			}
			n, _ = waiting()
		}
	}
	s.settle()
	if n, line := waiting(); n > 0 {
		word := "messages wait"
		if n == 1 {
			word = "message waits"
		}
		s.ui.notice(s.paint.Faint(fmt.Sprintf("%d %s (%s); they go out when you are both online.", n, word, line)))
		return n
	}
	return 0
}

// settle writes out what was shown and then records it as shown. Between
// the two is where a crash could show a message twice; see
// network.Node.MarkShown.
func (s *Shell) settle() {
	if s.unflushed == 0 {
		return
	}
	s.ui.flush()
	for _, m := range s.shown {
		s.cfg.Net.MarkShown(m)
	}
	clear(s.shown)
	s.unflushed = 0
}

// handle acts on one typed line and reports whether the person asked to quit.
func (s *Shell) handle(line string) (quit bool) {
	a, err := parseAddressed(line, s.cfg.Name, s.cfg.Friends, s.groupNames(), s.to)
	if err != nil {
		s.problem(err.Error())
		if errors.Is(err, network.ErrMessageTooLong) {
			s.ui.keep(line) // to shorten it
		}
		return false
	}
	switch a := a.(type) {
	case sendAction:
		if err := s.send(a.to, a.text); err != nil {
			s.problem(fmt.Sprintf("not sent to %s: %v", a.to, err))
		}
	case commandAction:
		for _, cmd := range commands {
			if cmd.name == a.name {
				return cmd.run(s, a.args)
			}
		}
		var names []string
		for _, cmd := range commands {
			names = append(names, cmd.name)
		}
		if n := suggest(a.name, names); n != "" {
			s.problem(fmt.Sprintf("unknown command /%s: did you mean /%s? /help lists the commands", Sanitize(a.name), n))
		} else {
			s.problem(fmt.Sprintf("unknown command /%s: /help lists the commands", Sanitize(a.name)))
		}
	}
	return false
}

// groupNames returns the names of the table's groups, without '@'.
func (s *Shell) groupNames() []string {
	var out []string
	for _, g := range s.cfg.Groups {
		out = append(out, g.Name)
	}
	return out
}

// problem shows a problem in one line. With piped input, one about a line
// of the input names that line, so that a script's author finds it.
func (s *Shell) problem(line string) {
	if !s.cfg.Terminal && s.inLine > 0 {
		line = fmt.Sprintf("line %d: %s", s.inLine, line)
	}
	s.ui.notice(s.paint.Problem(line))
}

// render shows one network event. Everything that came from the other side
// goes through Sanitize.
func (s *Shell) render(ev network.Event) {
	switch ev := ev.(type) {
	case network.MessageReceived:
		to := ""
		if ev.Group != "" {
			to = " to @" + ev.Group
		}
		s.ui.message(fmt.Sprintf("Message from %s%s: %s%s%s", s.paint.Name(ev.From), to, Sanitize(ev.Text), lateness(ev.Sent, time.Now()), carriedNote(ev)))
	case network.MessageCarried:
		k := sentKey{ev.To, ev.Seq}
		if s.carried[k] {
			return // one line per message, however many carry it
		}
		if len(s.carried) > maxRefusalHosts {
			clear(s.carried)
		}
		s.carried[k] = true
		s.ui.notice(s.paint.Faint(fmt.Sprintf("%s cannot be reached: %s carries %q to them, sealed", ev.To, ev.Via, Sanitize(abbreviate(ev.Text, 40)))))
	case network.CannotCarry:
		s.ui.notice(s.paint.Faint(Sanitize(fmt.Sprintf("Nobody can carry messages to %s yet: %v. They wait for the direct path.", ev.To, ev.Err))))
	case network.MailRefused:
		s.problem(Sanitize(fmt.Sprintf("WARNING: a sealed message said to be from %s, carried by %s, was altered or forged; nothing of it is shown (%v)", ev.From, ev.Via, ev.Err)))
	case network.GroupReport:
		s.renderGroupReport(ev)
	case network.MessageRefused:
		s.problem(Sanitize(fmt.Sprintf("WARNING: %s sent a message to @%s, not shown: %v. Are your tables the same?", ev.From, ev.Group, ev.Err)))
	case network.MessageQueued:
		var idErr *network.IdentityError
		if errors.As(ev.Err, &idErr) {
			s.identityWarning("to", ev.To+"'s address "+friendAddr(ev.Err), idErr, fmt.Sprintf("message queued, %d waiting", ev.Waiting))
			return
		}
		line := fmt.Sprintf("%s is offline: queued, %d waiting", ev.To, ev.Waiting)
		if ev.Group != "" {
			line = fmt.Sprintf("%s is offline: the copy for @%s is queued, %d waiting", ev.To, ev.Group, ev.Waiting)
		}
		if ev.Err != nil {
			line += " (" + Sanitize(ev.Err.Error()) + ")"
		}
		s.ui.notice(s.paint.Faint(line))
	case network.MessageDelivered:
		to := ev.To
		if ev.Group != "" {
			to += " (@" + ev.Group + ")"
		}
		if ev.Via != "" {
			to += " (via " + ev.Via + ")"
		}
		if ev.WasQueued || ev.Group != "" || ev.Via != "" {
			s.ui.notice(s.paint.Faint(fmt.Sprintf("Delivered to %s: %q (written %s)", to, Sanitize(abbreviate(ev.Text, 40)), when(ev.Sent))))
		}
	case network.MessageFailed:
		to := ev.To
		if ev.Group != "" {
			to += "'s copy for @" + ev.Group
		}
		line := fmt.Sprintf("cannot record the message to %s (%q): %s", to, Sanitize(abbreviate(ev.Text, 40)), Sanitize(ev.Err.Error()))
		if ev.Written {
			line += fmt.Sprintf("; it is not kept, and %s may have received it", ev.To)
		} else {
			line += "; it was not sent"
		}
		s.problem(line)
	case network.StoreFailed:
		s.problem(Sanitize(fmt.Sprintf("cannot record the messages friends send: %v; they keep them and send them again once it works", ev.Err)))
	case network.StoreRecovered:
		s.ui.notice(s.paint.Faint("The message database records again."))
	case network.ReceivingPaused:
		s.problem(fmt.Sprintf("Receiving from %s is paused: %s sent more than %s in %s, the most one friend may cost on disk. It resumes by %s; nothing is lost, %s keeps the messages until then.",
			ev.From, ev.From, bytesString(ev.Limit), windowString(ev.Window), when(ev.Until), ev.From))
	case network.ConnRefused:
		var idErr *network.IdentityError
		if errors.As(ev.Err, &idErr) {
			s.identityWarning("from", "a connection from "+ev.Addr, idErr, "connection closed")
			return
		}
		if errors.Is(ev.Err, network.ErrCertRejected) {
			s.problem(Sanitize(fmt.Sprintf("A connection from %s ended: %v", ev.Addr, ev.Err)))
			return
		}
		s.renderRefused(ev)
	case network.IdentityPinned:
		if ev.Via != "" {
			s.ui.notice(s.paint.Faint(fmt.Sprintf("First contact with %s, through the card %s handed on: pinned identity %s. Check it against what %s's /whoami shows.", ev.Name, ev.Via, ev.ID, ev.Name)))
			return
		}
		if !s.cfg.Terminal {
			// One line, for scripts.
			s.ui.notice(s.paint.Faint(fmt.Sprintf("First contact with %s: pinned identity %s. Check it against what %s's /whoami shows.", ev.Name, ev.ID, ev.Name)))
			return
		}
		// Broken at words to fit, with the ID on a line of its own.
		width := s.ui.width() - 1 // a full row would leave the cursor at its end
		if s.settings.Time {
			width -= stampWidth
		}
		lines := wrapWords(fmt.Sprintf("First contact with %s: pinned the identity", ev.Name), width)
		lines = append(lines, ev.ID.String())
		lines = append(lines, wrapWords(fmt.Sprintf("Check it against what %s's /whoami shows.", ev.Name), width)...)
		s.ui.notice(s.paint.Faint(strings.Join(lines, "\n")))
	case network.ConnUp, network.ConnDown:
		// Quiet: /peers shows connection state.
	}
}

// carriedNote says how a message came, when not directly or not in order.
func carriedNote(ev network.MessageReceived) string {
	var b strings.Builder
	if ev.Via != "" {
		fmt.Fprintf(&b, " (via %s)", ev.Via)
	}
	if ev.Late {
		b.WriteString(" (late)")
	}
	if ev.AheadOfGap {
		fmt.Fprintf(&b, " (an earlier message from %s has not arrived yet)", ev.From)
	}
	return b.String()
}

// renderGroupReport shows in one line how a message to a group went, once
// every copy is delivered, queued or failed: "Delivered to @trip (bob,
// carol): …" when all have it, else who has it and who waits. A queued
// copy gets its own "Delivered to carol (@trip)" line when it arrives.
func (s *Shell) renderGroupReport(ev network.GroupReport) {
	text := Sanitize(abbreviate(ev.Text, 40))
	all := len(ev.Delivered) + len(ev.Queued) + len(ev.Failed)
	if len(ev.Delivered) == all {
		s.ui.notice(s.paint.Faint(fmt.Sprintf("Delivered to @%s (%s): %q", ev.Group, strings.Join(ev.Delivered, ", "), text)))
		return
	}
	var parts []string
	if len(ev.Delivered) > 0 {
		parts = append(parts, fmt.Sprintf("delivered to %d of %d (%s)", len(ev.Delivered), all, strings.Join(ev.Delivered, ", ")))
	}
	if len(ev.Queued) > 0 {
		parts = append(parts, fmt.Sprintf("queued for %s (offline)", strings.Join(ev.Queued, ", ")))
	}
	for _, m := range ev.Failed {
		parts = append(parts, fmt.Sprintf("not recorded for %s (%v), so not sent again", m, ev.Why[m]))
	}
	line := Sanitize(fmt.Sprintf("@%s: %s: %q", ev.Group, strings.Join(parts, "; "), text))
	if len(ev.Failed) > 0 {
		s.problem(line)
	} else {
		s.ui.notice(s.paint.Faint(line))
	}
	for _, m := range ev.Queued {
		var idErr *network.IdentityError
		if errors.As(ev.Why[m], &idErr) {
			s.identityWarning("to", m+"'s address "+friendAddr(ev.Why[m]), idErr, "copy for @"+ev.Group+" queued")
		}
	}
}

// identityWarning shows one line about a peer whose identity is wrong:
// where, what was expected and presented, and how to accept a legitimate
// change.
func (s *Shell) identityWarning(direction, where string, e *network.IdentityError, outcome string) {
	// Once per identity presented for a name, in each direction: every
	// retry meets it again, and saying so each time says nothing new.
	key := direction + " " + e.Name + " " + e.Presented.String() + " " + e.Problem
	if s.warned[key] {
		return
	}
	if len(s.warned) > maxRefusalHosts {
		clear(s.warned)
	}
	s.warned[key] = true
	var b strings.Builder
	fmt.Fprintf(&b, "WARNING: %s: ", where)
	switch {
	case e.Problem != "":
		fmt.Fprintf(&b, "identity %s: %s", e.Presented, e.Problem)
	default:
		fmt.Fprintf(&b, "presented identity %s as %s, but %s is %s to %s", e.Presented, e.Name, e.Name, e.Source, e.Expected)
	}
	fmt.Fprintf(&b, " (%s)", outcome)
	switch e.Source {
	case network.PinnedOnFirstUse:
		fmt.Fprintf(&b, ". If %s really has a new identity, type /forget %s.", e.Name, e.Name)
	case network.PinnedByTable:
		fmt.Fprintf(&b, ". If %s really has a new identity, put it in the table.", e.Name)
	case network.Forgotten:
		fmt.Fprintf(&b, ". If that is really %s (ask for their /whoami), type /accept %s %s.", e.Name, e.Name, e.Presented)
	}
	s.problem(Sanitize(b.String()))
}

// friendAddr digs the address out of a ReachError, for warnings.
func friendAddr(err error) string {
	var re *network.ReachError
	if errors.As(err, &re) {
		return re.Addr
	}
	return "?"
}

// refusals summarises refused connections, so that a flood of junk from
// any number of addresses prints two lines per refusalQuiet: the first
// refusal in full, then how many followed it, from how many addresses.
type refusals struct {
	last  time.Time       // when the last line about refusals was printed
	n     int             // refusals since, not printed
	hosts map[string]bool // their addresses, at most maxRefusalHosts
	more  int             // addresses past maxRefusalHosts
	due   *time.Timer     // fires when the summary of n is due
}

// refusalQuiet is how long after a line about refused connections further
// refusals are counted rather than printed.
const refusalQuiet = 10 * time.Second

// maxRefusalHosts bounds the addresses remembered for a summary.
const maxRefusalHosts = 1024

func (s *Shell) renderRefused(ev network.ConnRefused) {
	r := &s.refused
	host := ev.Addr
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	now := time.Now()
	if now.Sub(r.last) < refusalQuiet || r.n > 0 {
		// Counted for the summary, which the timer prints.
		r.n += 1 + ev.Dropped
		switch {
		case r.hosts[host]:
		case len(r.hosts) < maxRefusalHosts:
			r.hosts[host] = true
		default:
			r.more++
		}
		if r.due == nil {
			r.due = time.NewTimer(time.Until(r.last.Add(refusalQuiet)))
		}
		return
	}
	who := ""
	if ev.Name != "" {
		who = fmt.Sprintf(" claiming to be %q", ev.Name)
	}
	more := ""
	if ev.Dropped > 0 {
		more = fmt.Sprintf("; %d more before it while p2pchat was busy (see p2pchat.log)", ev.Dropped)
	}
	r.last = now
	s.problem(Sanitize(fmt.Sprintf("WARNING: refused a connection from %s%s: %v%s", ev.Addr, who, ev.Err, more)))
}

// refusalsDue is the channel of the summary's timer; nil when none is due.
func (s *Shell) refusalsDue() <-chan time.Time {
	if s.refused.due == nil {
		return nil
	}
	return s.refused.due.C
}

// summariseRefusals prints how many connections were refused since the
// last line about them, and from how many addresses.
func (s *Shell) summariseRefusals() {
	r := &s.refused
	r.due = nil
	if r.n == 0 {
		return
	}
	addrs := len(r.hosts) + r.more
	word := "addresses"
	if addrs == 1 {
		word = "address"
	}
	s.problem(fmt.Sprintf("WARNING: %d more connections refused in the last %v, from %d %s; see p2pchat.log", r.n, time.Since(r.last).Round(time.Second), addrs, word))
	r.last, r.n, r.more = time.Now(), 0, 0
	clear(r.hosts)
}

// lateDelay is how late a message must arrive for its time of writing to
// be shown; clockAhead, how far in the future the sender's clock may say it
// was written before that clock is taken for wrong.
const (
	lateDelay  = time.Minute
	clockAhead = 24 * time.Hour
)

// lateness is what a received message written at sent (the sender's clock)
// shows when it arrives at now: nothing when it is fresh, " (written 14:02)"
// when it is late, with the date when that is not today, and " (clock
// ahead)" when the sender's clock is more than a day ahead of ours. The
// receiver's clock is the one trusted.
func lateness(sent, now time.Time) string {
	switch {
	case sent.IsZero():
		return ""
	case sent.After(now.Add(clockAhead)):
		return " (clock ahead)"
	case now.Sub(sent) < lateDelay:
		return ""
	}
	sent = sent.In(now.Location())
	if y, m, d := sent.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return " (written " + sent.Format("15:04") + ")"
	}
	return " (written " + sent.Format("2006-01-02 15:04") + ")"
}

// when formats a past time briefly: the clock time today, else the date too.
func when(t time.Time) string {
	if y, m, d := t.Date(); y == time.Now().Year() && m == time.Now().Month() && d == time.Now().Day() {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02 15:04")
}

// wrapWords breaks text at spaces into lines of at most width columns,
// where it can: a word longer than width has a line of its own. A width
// of 0 or less leaves text whole.
func wrapWords(text string, width int) []string {
	if width <= 0 {
		return []string{text}
	}
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		switch {
		case line == "":
			line = w
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(w) <= width:
			line += " " + w
		default:
			lines = append(lines, line)
			line = w
		}
	}
	return append(lines, line)
}

// bytesString is n bytes in the largest binary unit it is at least one
// of, to three figures.
func bytesString(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size {
			return strconv.FormatFloat(float64(n)/float64(u.size), 'g', 3, 64) + " " + u.name
		}
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

// windowString is d briefly: "24 h", "90 s".
func windowString(d time.Duration) string {
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%d h", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return d.Round(time.Millisecond).String()
}

func abbreviate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
