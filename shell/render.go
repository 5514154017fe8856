package shell

import (
	"fmt"
	"hash/fnv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fatih/color"
	"golang.org/x/text/width"
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
		0x17b4 <= r && r <= 0x17b5, // Khmer inherent vowels
		0x180b <= r && r <= 0x180f, // Mongolian variation selectors, vowel separator
		0x200b <= r && r <= 0x200d, // zero-width space, non-joiner, joiner
		0x2060 <= r && r <= 0x2064, // word joiner, invisible operators
		0x206a <= r && r <= 0x206f, // deprecated format characters
		r == 0x3164, r == 0xffa0,   // Hangul fillers
		r == 0xfeff,                  // zero-width no-break space (BOM)
		0xfff9 <= r && r <= 0xfffb,   // interlinear annotation
		0x1bca0 <= r && r <= 0x1bca3, // shorthand format controls
		0x1d173 <= r && r <= 0x1d17a, // musical formatting
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

// continuation starts every screen line of a long line after its first, so
// that no text a friend sends can begin a screen line: each begins with
// something of ours, "Message from NAME" or this. It is drawn faint.
const continuation = "  │ "

// autowrapOff and autowrapOn frame every line printed on the terminal: the
// terminal itself never starts a screen line, even where it draws a
// character wider than wrap counted it (ambiguous widths, emoji), since it
// writes what overflows over the last column instead.
const (
	autowrapOff = "\x1b[?7l"
	autowrapOn  = "\x1b[?7h"
)

// tabStop is the distance between the terminal's tab stops.
const tabStop = 8

// wrap breaks line into screen lines of at most width columns, each after
// the first starting with marker, which takes markerWidth columns. Wide
// characters count two columns, combining marks and format characters none;
// a tab goes to the next tab stop; "\n" starts a line of ours, without the
// marker. The colours in force at a break (SGR sequences, the only escape
// sequences the shell itself writes) are ended before it and taken up again
// after the marker. The text is otherwise left as it is.
func wrap(line string, width int, marker string, markerWidth int) string {
	if width <= markerWidth+2 {
		return line // too narrow to wrap usefully
	}
	var b strings.Builder
	var sgr []string // in force since the last reset
	col := 0
	for i := 0; i < len(line); {
		if seq := escapeAt(line[i:]); seq != "" {
			b.WriteString(seq)
			switch {
			case seq == "\x1b[0m" || seq == "\x1b[m":
				sgr = sgr[:0]
			case strings.HasSuffix(seq, "m"):
				sgr = append(sgr, seq)
			}
			i += len(seq)
			continue
		}
		r, size := utf8.DecodeRuneInString(line[i:])
		if r == '\n' {
			b.WriteByte('\n')
			col = 0
			i += size
			continue
		}
		next := col + columns(r)
		if r == '\t' {
			next = (col/tabStop + 1) * tabStop
		}
		if next > width {
			if len(sgr) > 0 {
				b.WriteString("\x1b[0m")
			}
			b.WriteString("\r\n")
			b.WriteString(marker)
			for _, s := range sgr {
				b.WriteString(s)
			}
			col = markerWidth
			continue // r again, on the new line
		}
		b.WriteString(line[i : i+size])
		col = next
		i += size
	}
	return b.String()
}

// escapeAt returns the escape sequence s starts with, or "": a CSI sequence
// whole, any other escape as its ESC alone.
func escapeAt(s string) string {
	if s == "" || s[0] != 0x1b {
		return ""
	}
	if len(s) < 2 || s[1] != '[' {
		return s[:1]
	}
	for j := 2; j < len(s); j++ {
		if 0x40 <= s[j] && s[j] <= 0x7e {
			return s[:j+1]
		}
	}
	return s
}

// columns is how many columns a terminal gives r: two for East Asian wide
// and fullwidth characters, none for combining marks and format characters
// (as readline counts them), one for the rest. A variation selector-16,
// which asks for a character's emoji form, counts one: most terminals then
// draw a character counted one as two.
func columns(r rune) int {
	switch {
	case r == 0xfe0f:
		return 1
	case r < 0x20 || unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf):
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// stringColumns is how many columns s takes, escape sequences aside.
func stringColumns(s string) int {
	n := 0
	for i := 0; i < len(s); {
		if seq := escapeAt(s[i:]); seq != "" {
			i += len(seq)
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		n += columns(r)
		i += size
	}
	return n
}
