package shell

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"p2pchat/network"
)

func TestSanitize(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text / with slashes", "plain text / with slashes"},
		{"tab\tkept", "tab\tkept"},
		{"é 日本 🙂", "é 日本 🙂"},
		{"\x1b[2Jclear", `\x1b[2Jclear`},
		{"bell\a nul\x00 cr\r lf\n del\x7f", `bell\x07 nul\x00 cr\x0d lf\x0a del\x7f`},
		{"c1 \u009b31m", `c1 \x9b31m`},
		{"bad \xff\xfe utf8", "bad \uFFFD\uFFFD utf8"},
		{"rtl \u202eevil\u202c", `rtl \u202eevil\u202c`},
		{"iso \u2066x\u2069 ls\u2028", `iso \u2066x\u2069 ls\u2028`},
		{"zw\u200bsp\u200dj wj\u2060 bom\ufeff shy\u00ad", `zw\u200bsp\u200dj wj\u2060 bom\ufeff shy\u00ad`},
		{"tag\U000e0041 fill\u3164\u115f", `tag\ue0041 fill\u3164\u115f`},
	} {
		if got := Sanitize(tc.in); got != tc.want {
			t.Errorf("Sanitize(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzSanitize(f *testing.F) {
	f.Add("\x1b]0;title\x07")
	f.Add("ok\t\u202e\xff")
	f.Fuzz(func(t *testing.T, in string) {
		out := Sanitize(in)
		for _, r := range out {
			if r < 0x20 && r != '\t' || r == 0x7f || 0x80 <= r && r < 0xa0 || isInvisibleFormat(r) {
				t.Fatalf("Sanitize(%q) = %q still holds %U", in, out, r)
			}
		}
	})
}

func TestNameColoursAreStableAndDistinct(t *testing.T) {
	p := newPainter(true)
	seen := map[string]string{}
	for _, name := range []string{"user_1", "user_2", "user_3"} {
		c := p.Name(name)
		if c != p.Name(name) {
			t.Errorf("%s is drawn differently twice", name)
		}
		if !strings.Contains(c, "\x1b[") || !strings.Contains(c, name) {
			t.Errorf("%s drawn as %q, want it coloured", name, c)
		}
		prefix := c[:strings.Index(c, name)]
		if other, dup := seen[prefix]; dup {
			t.Errorf("%s and %s share the colour %q", name, other, prefix)
		}
		seen[prefix] = name
	}
	if got := newPainter(false).Name("user_1"); got != "user_1" {
		t.Errorf("without colour: %q", got)
	}
}

func TestRenderReceivedAndRefused(t *testing.T) {
	var out, errOut strings.Builder
	s := &Shell{paint: newPainter(false), ui: newPlainUI(strings.NewReader(""), &out, &errOut), refused: refusals{hosts: map[string]bool{}}}

	s.render(network.MessageReceived{From: "bob", Text: "hi\x1b[2J"})
	s.ui.flush()
	if got, want := out.String(), "Message from bob: hi\\x1b[2J\n"; got != want {
		t.Errorf("message rendered as %q, want %q", got, want)
	}

	// A flood, from one host or many, prints one line, then a summary when
	// refusalQuiet is over (the Run loop's timer; called here).
	for range 50 {
		s.render(network.ConnRefused{Addr: "127.0.0.9:4000", Name: "mal\x1b[31mlory", Err: errors.New("bad hello")})
	}
	s.render(network.ConnRefused{Addr: "[::1]:4000", Err: errors.New("no hello within 10s"), Dropped: 10})
	if s.refusalsDue() == nil {
		t.Fatal("no summary due after a flood")
	}
	s.summariseRefusals()
	lines := strings.Split(strings.TrimSuffix(errOut.String(), "\n"), "\n")
	want := []string{
		`WARNING: refused a connection from 127.0.0.9:4000 claiming to be "mal\x1b[31mlory": bad hello`,
		`WARNING: 60 more connections refused in the last 0s, from 2 addresses; see p2pchat.log`,
	}
	if !reflect.DeepEqual(lines, want) {
		t.Errorf("refusals rendered as\n%q\nwant\n%q", lines, want)
	}
}

// An identity warning is said once per identity presented for a name, not
// at every retry; another identity is news.
func TestIdentityWarningOnce(t *testing.T) {
	var out, errOut strings.Builder
	s := &Shell{paint: newPainter(false), ui: newPlainUI(strings.NewReader(""), &out, &errOut), refused: refusals{hosts: map[string]bool{}}, warned: map[string]bool{}}
	a, _ := network.ParseID("CUPXJ2B4LDOVT-VZEPCSCOQ5I5F-PI7HK25LEENMM-BQJEPGFCLWGOA")
	b, _ := network.ParseID("LXPZLGCKDQ4EW-WMKZHSETBJ5JC-7IUL3N6KSJ4OB-DW3WHEAICFBNQ")
	queued := func(presented network.ID) network.MessageQueued {
		idErr := &network.IdentityError{Name: "bob", Presented: presented, Expected: a, Source: network.PinnedOnFirstUse}
		return network.MessageQueued{To: "bob", Waiting: 1, Err: &network.ReachError{Name: "bob", Addr: "127.0.0.1:1", Err: idErr}}
	}
	for range 8 {
		s.render(queued(b))
	}
	if n := strings.Count(errOut.String(), "WARNING"); n != 1 {
		t.Errorf("8 retries meeting one identity gave %d warnings:\n%s", n, errOut.String())
	}
	other, _ := network.ParseID("7U4YVF73NIENT-TANVPWEXOKHWS-ASTLGQUZ56EFC-ALOKSDV4KO3JA")
	s.render(queued(other))
	if n := strings.Count(errOut.String(), "WARNING"); n != 2 {
		t.Errorf("a second identity gave %d warnings in all, want 2", n)
	}
}

func TestLateness(t *testing.T) {
	now := time.Date(2026, 12, 1, 15, 30, 0, 0, time.Local)
	for _, tc := range []struct {
		name string
		sent time.Time
		want string
	}{
		{"fresh", now.Add(-10 * time.Second), ""},
		{"a little ahead", now.Add(5 * time.Minute), ""},
		{"late today", time.Date(2026, 12, 1, 14, 2, 0, 0, time.Local), " (written 14:02)"},
		{"yesterday", time.Date(2026, 11, 30, 23, 59, 0, 0, time.Local), " (written 2026-11-30 23:59)"},
		{"clock a day ahead", now.Add(25 * time.Hour), " (clock ahead)"},
		{"unknown", time.Time{}, ""},
	} {
		if got := lateness(tc.sent, now); got != tc.want {
			t.Errorf("%s: lateness = %q, want %q", tc.name, got, tc.want)
		}
	}
}
