package shell

import (
	"slices"
	"testing"
)

func TestWrapWords(t *testing.T) {
	for _, tc := range []struct {
		text  string
		width int
		want  []string
	}{
		{"one two three", 0, []string{"one two three"}},
		{"one two three", 13, []string{"one two three"}},
		{"one two three", 12, []string{"one two", "three"}},
		{"one two three", 7, []string{"one two", "three"}},
		{"one two three", 6, []string{"one", "two", "three"}},
		{"a_very_long_word x", 5, []string{"a_very_long_word", "x"}}, // a word too long for a line has one of its own
		{"né à été", 5, []string{"né à", "été"}},                     // in characters, not bytes
		{"  spaced   out  ", 20, []string{"spaced out"}},
	} {
		if got := wrapWords(tc.text, tc.width); !slices.Equal(got, tc.want) {
			t.Errorf("wrapWords(%q, %d) = %q, want %q", tc.text, tc.width, got, tc.want)
		}
	}
}
