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
		{"fill\u1160\uffa0 zwnj\u200c mvs\u180e", `fill\u1160\uffa0 zwnj\u200c mvs\u180e`},
		{"old\u206a\u206f ann\ufff9 sh\U0001bca0 mus\U0001d173 khm\u17b4", `old\u206a\u206f ann\ufff9 sh\u1bca0 mus\u1d173 khm\u17b4`},
		// Look-alikes are shown as sent: wrap keeps them off the start of a screen line.
		{"Ｍｅｓｓａｇｅ ｆｒｏｍ bob", "Ｍｅｓｓａｇｅ ｆｒｏｍ bob"},
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

func TestWrap(t *testing.T) {
	const marker = "> "
	for _, tc := range []struct {
		name  string
		in    string
		width int
		want  string
	}{
		{"short", "abc", 10, "abc"},
		{"exactly the width", "abcdefghij", 10, "abcdefghij"},
		{"one past", "abcdefghijk", 10, "abcdefghij\r\n> k"},
		{"two breaks", "abcdefghijklmnopqrstu", 10, "abcdefghij\r\n> klmnopqr\r\n> stu"},
		{"spaces kept", "ab        cd", 10, "ab        \r\n> cd"},
		{"wide characters count two", "日本語日本語", 10, "日本語日本\r\n> 語"},
		{"a wide character never split", "a日本語日本", 9, "a日本語日\r\n> 本"},
		{"fullwidth", "ＭｅｓｓａｇｅＸ", 10, "Ｍｅｓｓａ\r\n> ｇｅＸ"},
		{"a combining mark stays with its letter", "abcde\u0301f", 5, "abcde\u0301\r\n> f"},
		{"tab to the next stop", "abc\tdefgh", 10, "abc\tde\r\n> fgh"},
		{"our own lines start bare", "abc\ndefgh\nij", 5, "abc\ndefgh\nij"},
		{"colours taken up again after the marker", "\x1b[31mabcdef\x1b[0m", 5, "\x1b[31mabcde\x1b[0m\r\n> \x1b[31mf\x1b[0m"},
		{"no colour after a reset", "\x1b[1mab\x1b[0mcdef", 5, "\x1b[1mab\x1b[0mcde\r\n> f"},
		{"too narrow to wrap", "abcdef", 4, "abcdef"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := wrap(tc.in, tc.width, marker, len(marker)); got != tc.want {
				t.Errorf("wrap(%q, %d) = %q, want %q", tc.in, tc.width, got, tc.want)
			}
		})
	}
}

// Whatever a friend sends, every screen line of it fits the width, every
// one after the first starts with the marker, and taking the breaks out
// gives the text back.
func FuzzWrap(f *testing.F) {
	f.Add(strings.Repeat(" ", 80)+"Message from bob: hi", 40)
	f.Add("日本語\u0301\t🙂\ufe0fＭｅｓｓａｇｅ ｆｒｏｍ", 7)
	f.Add("\x1b[2J\u200b\U000e0041", 20)
	f.Fuzz(func(t *testing.T, text string, width int) {
		width = 7 + int(uint(width)%200) // past too narrow to wrap
		const marker = "  │ "
		line := "Message from bob: " + Sanitize(text)
		out := wrap(line, width, marker, 4)
		if back := strings.ReplaceAll(out, "\r\n"+marker, ""); back != line {
			t.Fatalf("wrap(%q, %d) = %q: without the breaks %q", line, width, out, back)
		}
		rows := strings.Split(out, "\r\n")
		for i, row := range rows {
			if i > 0 && !strings.HasPrefix(row, marker) {
				t.Fatalf("wrap(%q, %d): row %d is %q, without the marker", line, width, i, row)
			}
			col := 0
			for _, r := range row {
				if r == '\t' {
					col = (col/tabStop + 1) * tabStop
				} else {
					col += columns(r)
				}
			}
			if col > width {
				t.Fatalf("wrap(%q, %d): row %d, %q, takes %d columns", line, width, i, row, col)
			}
		}
	})
}
