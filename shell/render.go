package shell

import (
	"fmt"
	"hash/fnv"
	"strings"
	"unicode/utf8"

	"github.com/fatih/color"
)

// Sanitize makes text from the network safe to write to a terminal. Tabs and
// printable characters pass unchanged; other control characters (C0, DEL,
// C1) become \xNN, invisible direction and line-separator characters become
// \uNNNN, and bytes that are not UTF-8 become U+FFFD. Nothing in the result
// can move the cursor, change colours or reorder what is shown.
func Sanitize(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteRune(utf8.RuneError)
		case r == '\t':
			b.WriteByte('\t')
		case r < 0x20 || r == 0x7f || 0x80 <= r && r < 0xa0:
			fmt.Fprintf(&b, `\x%02x`, r)
		case isInvisibleFormat(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isInvisibleFormat reports the characters that do not show themselves:
// those that change how the rest of a line is laid out (bidirectional
// overrides and isolates, the line and paragraph separators), and those
// that make two texts look alike or hide in one (zero-width characters,
// joiners, the soft hyphen, Hangul fillers, tag characters).
func isInvisibleFormat(r rune) bool {
	switch {
	case r == 0x061c, r == 0x200e, r == 0x200f:
		return true
	case 0x202a <= r && r <= 0x202e, 0x2066 <= r && r <= 0x2069:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	// Invisible: they let two texts look alike, or hide in one.
	case r == 0x00ad, // soft hyphen
		r == 0x034f,              // combining grapheme joiner
		r == 0x115f, r == 0x1160, // Hangul choseong and jungseong fillers
		r == 0x180e,                // Mongolian vowel separator
		0x200b <= r && r <= 0x200d, // zero-width space, non-joiner, joiner
		0x2060 <= r && r <= 0x2064, // word joiner, invisible operators
		r == 0x3164, r == 0xffa0,   // Hangul fillers
		r == 0xfeff,                  // zero-width no-break space (BOM)
		0xe0000 <= r && r <= 0xe007f: // tag characters
		return true
	}
	return false
}

// palette holds the colours friends' names are drawn in: none of them red,
// which is for problems, and all readable on dark and light backgrounds.
var palette = []color.Attribute{
	color.FgGreen, color.FgYellow, color.FgBlue, color.FgMagenta, color.FgCyan,
	color.FgHiGreen, color.FgHiYellow, color.FgHiBlue, color.FgHiMagenta, color.FgHiCyan,
}

// painter draws names and notices, in colour or not.
type painter struct {
	enabled bool
}

// newPainter returns a painter that colours only if enabled.
func newPainter(enabled bool) painter { return painter{enabled: enabled} }

func (p painter) paint(s string, attrs ...color.Attribute) string {
	if !p.enabled {
		return s
	}
	c := color.New(attrs...)
	c.EnableColor()
	return c.Sprint(s)
}

// Name draws a friend's name in the friend's own colour, the same for a
// name on every run and every machine.
func (p painter) Name(name string) string {
	h := fnv.New32a()
	h.Write([]byte(name))
	return p.paint(name, palette[h.Sum32()%uint32(len(palette))], color.Bold)
}

// Problem draws a line that reports something that went wrong.
func (p painter) Problem(s string) string { return p.paint(s, color.FgRed) }

// Faint draws secondary information.
func (p painter) Faint(s string) string { return p.paint(s, color.Faint) }
