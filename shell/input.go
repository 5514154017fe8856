package shell

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"p2pchat/network"
)

// action is what a typed line asks for: a message or a command.
type action interface{ isAction() }

type sendAction struct{ to, text string }

type commandAction struct {
	name string // without the '/'
	args []string
}

func (sendAction) isAction()    {}
func (commandAction) isAction() {}

// parseLine turns a typed line into an action. A blank line is no action and
// no error. self is the person's own name and friends the others'. Errors are
// sentences to show as they are.
func parseLine(line, self string, friends []string) (action, error) {
	return parseLineTo(line, self, friends, "")
}

// parseLineTo is parseLine for a person talking to one friend (/to): a line
// that starts with NAME/, where NAME is a friend or oneself, goes there; a
// line that starts with '/' is a command; any other goes to that friend,
// whole.
func parseLineTo(line, self string, friends []string, current string) (action, error) {
	return parseAddressed(line, self, friends, nil, current)
}

// parseAddressed is parseLineTo where a line may also start with @GROUP/,
// GROUP one of groups or network.AllGroup, to write to a group; its
// sendAction's to is then "@GROUP". current may be "@GROUP" too.
func parseAddressed(line, self string, friends, groups []string, current string) (action, error) {
	trimmed := strings.TrimLeft(line, " \t")
	if strings.TrimSpace(trimmed) == "" {
		return nil, nil
	}
	if strings.HasPrefix(trimmed, "/") {
		f := strings.Fields(trimmed[1:])
		if len(f) == 0 {
			return nil, errors.New(`a lone "/" is not a command: /help lists them`)
		}
		return commandAction{name: f[0], args: f[1:]}, nil
	}
	to, text, ok := strings.Cut(line, "/")
	to = strings.TrimSpace(to)
	known := func(to string) bool {
		if g, ok := strings.CutPrefix(to, "@"); ok {
			return g == network.AllGroup || slices.Contains(groups, g)
		}
		return to == self || slices.Contains(friends, to)
	}
	if current != "" && (!ok || !known(to)) {
		to, text, ok = current, line, true
	}
	if !ok {
		return nil, fmt.Errorf(`no "/" in that line: write friend/message, for example %s/hello (/help for more)`, example(friends))
	}
	switch {
	case to == self:
		return nil, network.ErrSelf
	case strings.HasPrefix(to, "@") && !known(to):
		return nil, unknownGroup(to, groups)
	case !strings.HasPrefix(to, "@") && !slices.Contains(friends, to):
		return nil, unknownFriend(to, friends)
	case text == "":
		return nil, fmt.Errorf("%w: write something after the '/'", network.ErrEmptyMessage)
	}
	if err := network.CheckText(text); err != nil {
		return nil, fmt.Errorf("%w; nothing was sent", err)
	}
	return sendAction{to: to, text: text}, nil
}

// groupList lists @all and groups for a line: "@all, @trip".
func groupList(groups []string) string {
	out := []string{"@" + network.AllGroup}
	for _, g := range groups {
		out = append(out, "@"+g)
	}
	return strings.Join(out, ", ")
}

func example(friends []string) string {
	if len(friends) == 0 {
		return "friend"
	}
	return friends[0]
}
