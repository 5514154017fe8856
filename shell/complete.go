package shell

import "strings"

// completer completes friend and group names at the start of a line ("bo"
// gives "bob/", "@t" gives "@trip/"), command names after a leading '/',
// and a command's first argument ("/to bo" gives "/to bob "). It
// implements readline.AutoCompleter.
type completer struct {
	friends  []string
	groups   []string // with their '@', @all included
	commands []string
	// args holds, by command, what its first argument may be.
	args map[string][]string
}

// Do returns the possible continuations of line[:pos] and how many runes of
// it they continue.
func (c completer) Do(line []rune, pos int) ([][]rune, int) {
	prefix := string(line[:pos])
	var out [][]rune
	switch {
	case strings.HasPrefix(prefix, "/") && !strings.ContainsAny(prefix, " \t"):
		for _, cmd := range c.commands {
			if strings.HasPrefix(cmd, prefix[1:]) {
				out = append(out, []rune(cmd[len(prefix)-1:]+" "))
			}
		}
	case strings.HasPrefix(prefix, "/"):
		// "/cmd arg": only the first argument completes.
		cmd, arg, _ := strings.Cut(prefix[1:], " ")
		if strings.ContainsAny(arg, " \t") || strings.ContainsAny(cmd, "\t") {
			return nil, len([]rune(prefix))
		}
		for _, a := range c.args[cmd] {
			if strings.HasPrefix(a, arg) {
				out = append(out, []rune(a[len(arg):]+" "))
			}
		}
		if len(out) == 0 {
			return nil, len([]rune(prefix))
		}
		return out, len([]rune(arg))
	case !strings.ContainsAny(prefix, "/ \t"):
		for _, f := range append(c.friends[:len(c.friends):len(c.friends)], c.groups...) {
			if strings.HasPrefix(f, prefix) {
				out = append(out, []rune(f[len(prefix):]+"/"))
			}
		}
	}
	return out, len([]rune(prefix))
}
