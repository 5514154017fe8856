package shell

import "strings"

// completer completes friend and group names at the start of a line ("bo"
// gives "bob/", "@t" gives "@trip/") and command names after a leading
// '/'. It implements readline.AutoCompleter.
type completer struct {
	friends  []string
	groups   []string // with their '@', @all included
	commands []string
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
	case !strings.ContainsAny(prefix, "/ \t"):
		for _, f := range append(c.friends[:len(c.friends):len(c.friends)], c.groups...) {
			if strings.HasPrefix(f, prefix) {
				out = append(out, []rune(f[len(prefix):]+"/"))
			}
		}
	}
	return out, len([]rune(prefix))
}
