package shell

import (
	"reflect"
	"testing"
)

func TestCompleter(t *testing.T) {
	friends := []string{"bob", "bonnie", "carol"}
	groups := []string{"@all", "@trip", "@team"}
	c := completer{friends: friends, groups: groups, commands: []string{"help", "peers", "quit", "to"}, args: map[string][]string{"to": append(friends, groups...)}}
	for _, tc := range []struct {
		line string
		pos  int
		want []string
		n    int
	}{
		{"bo", 2, []string{"b/", "nnie/"}, 2},
		{"bon", 3, []string{"nie/"}, 3},
		{"c", 1, []string{"arol/"}, 1},
		{"", 0, []string{"bob/", "bonnie/", "carol/", "@all/", "@trip/", "@team/"}, 0},
		{"@t", 2, []string{"rip/", "eam/"}, 2},
		{"@tr", 3, []string{"ip/"}, 3},
		{"@", 1, []string{"all/", "trip/", "team/"}, 1},
		{"@x", 2, nil, 2},
		{"@trip/hi", 8, nil, 8},
		{"x", 1, nil, 1},
		{"bob/hi", 6, nil, 6},
		{"bo and more", 2, []string{"b/", "nnie/"}, 2},
		{"/he", 3, []string{"lp "}, 3},
		{"/", 1, []string{"help ", "peers ", "quit ", "to "}, 1},
		{"/help x", 7, nil, 7},
		// A command's argument.
		{"/to ", 4, []string{"bob ", "bonnie ", "carol ", "@all ", "@trip ", "@team "}, 0},
		{"/to @tr", 7, []string{"ip "}, 3},
		{"/to bo", 6, []string{"b ", "nnie "}, 2},
		{"/to c", 5, []string{"arol "}, 1},
		{"/to x", 5, nil, 5},
		{"/to bob x", 9, nil, 9}, // only the first argument
		{"/help b", 7, nil, 7},   // a command without friend arguments
		{"/to bob/hi", 10, nil, 10},
	} {
		got, n := c.Do([]rune(tc.line), tc.pos)
		var gs []string
		for _, g := range got {
			gs = append(gs, string(g))
		}
		if !reflect.DeepEqual(gs, tc.want) || n != tc.n {
			t.Errorf("Do(%q, %d) = %q, %d; want %q, %d", tc.line, tc.pos, gs, n, tc.want, tc.n)
		}
	}
}
