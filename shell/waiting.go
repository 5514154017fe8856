package shell

import (
	"fmt"
	"strings"
	"time"

	"p2pchat/network"
)

// On a terminal the shell keeps the person told about the messages that
// wait for an acknowledgement: the prompt counts them (user_1 (2 waiting)> ),
// and one that waits ackNotice gets a line saying so, once. A message the
// network reports queued has its line already (MessageQueued) and gets no
// other.

// ackNotice is how long a message may wait for its acknowledgement before
// a line says that it waits.
const ackNotice = 2 * time.Second

// sentKey names a message sent in this run: friend and Seq, or "@GROUP"
// and a number of the shell's own.
type sentKey struct {
	to  string
	seq uint64
}

type sentMsg struct {
	sentKey
	who  string // whose acknowledgement it waits for
	text string
	at   time.Time
}

// unacked is the messages sent in this run that are neither acknowledged,
// queued nor failed, and not yet said to wait.
type unacked struct {
	live   map[sentKey]bool
	order  []sentMsg   // in the order sent; those no longer live are skipped
	due    *time.Timer // fires when order[0] is due; nil when order is empty
	groups uint64      // group messages sent
}

// send sends text to a friend, or to a group's members for "@GROUP",
// tracking it until it is acknowledged. Every message the shell sends
// goes through here.
func (s *Shell) send(to, text string) error {
	k, who := sentKey{to: to}, to
	if g, ok := strings.CutPrefix(to, "@"); ok {
		members, err := s.cfg.Net.SendGroup(g, text)
		if err != nil {
			return err
		}
		s.unacked.groups++
		k.seq, who = s.unacked.groups, strings.Join(members, ", ")+" ("+to+")"
	} else {
		seq, err := s.cfg.Net.Send(to, text)
		if err != nil {
			return err
		}
		k.seq = seq
	}
	if s.cfg.Terminal {
		u := &s.unacked
		if u.live == nil {
			u.live = make(map[sentKey]bool)
		}
		u.live[k] = true
		u.order = append(u.order, sentMsg{sentKey: k, who: who, text: text, at: time.Now()})
		if u.due == nil {
			u.due = time.NewTimer(ackNotice)
		}
		s.updatePrompt()
	}
	return nil
}

// acked notes that ev settled a message: it no longer waits unseen.
func (s *Shell) acked(ev network.Event) {
	if !s.cfg.Terminal {
		return
	}
	u := &s.unacked
	switch ev := ev.(type) {
	case network.MessageDelivered:
		delete(u.live, sentKey{ev.To, ev.Seq})
	case network.MessageQueued:
		delete(u.live, sentKey{ev.To, ev.Seq})
	case network.MessageFailed:
		delete(u.live, sentKey{ev.To, ev.Seq})
	case network.GroupReport:
		// The oldest of that text to that group: a report has no number.
		for _, m := range u.order {
			if m.to == "@"+ev.Group && m.text == ev.Text && u.live[m.sentKey] {
				delete(u.live, m.sentKey)
				break
			}
		}
	default:
		return
	}
	for len(u.order) > 0 && !u.live[u.order[0].sentKey] {
		u.order = u.order[1:]
	}
	s.updatePrompt()
}

// unackedDue is the channel of the timer of the next message due for its
// line; nil when none is.
func (s *Shell) unackedDue() <-chan time.Time {
	if s.unacked.due == nil {
		return nil
	}
	return s.unacked.due.C
}

// sayUnacked says of each message that has waited ackNotice for its
// acknowledgement that it waits, and for whom.
func (s *Shell) sayUnacked() {
	u := &s.unacked
	u.due = nil
	now := time.Now()
	for len(u.order) > 0 {
		m := u.order[0]
		if !u.live[m.sentKey] {
			u.order = u.order[1:]
			continue
		}
		if wait := m.at.Add(ackNotice).Sub(now); wait > 0 {
			u.due = time.NewTimer(wait)
			return
		}
		delete(u.live, m.sentKey)
		u.order = u.order[1:]
		s.ui.notice(s.paint.Faint(fmt.Sprintf("Still waiting for %s to acknowledge %q.", m.who, Sanitize(abbreviate(m.text, 40)))))
	}
}

// updatePrompt sets the prompt: the person's name, the /to friend, and
// how many messages wait for an acknowledgement.
func (s *Shell) updatePrompt() {
	if !s.cfg.Terminal {
		return
	}
	p := s.cfg.Name
	if s.to != "" {
		p += " → " + s.to
	}
	n := 0
	for _, f := range s.cfg.Net.Status() {
		n += f.Pending
	}
	if n > 0 {
		p += fmt.Sprintf(" (%d waiting)", n)
	}
	p += "> "
	if p != s.prompt {
		s.prompt = p
		s.ui.setPrompt(p)
	}
}
