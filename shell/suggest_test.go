package shell

import "testing"

func TestEditDistance(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"bob", "bob", 0},
		{"", "bob", 3},
		{"bob", "", 3},
		{"bob", "bobb", 1},  // an insertion
		{"bob", "bo", 1},    // a deletion
		{"bob", "bab", 1},   // a substitution
		{"hlep", "help", 2}, // two letters swapped
		{"kitten", "sitting", 3},
		{"日本", "日本語", 1}, // in characters, not bytes
	} {
		if got := editDistance(tc.a, tc.b); got != tc.want {
			t.Errorf("editDistance(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestSuggest(t *testing.T) {
	friends := []string{"user_2", "user_3", "carol"}
	commands := []string{"help", "peers", "history", "to", "time"}
	for _, tc := range []struct {
		typed string
		names []string
		want  string
	}{
		{"carl", friends, "carol"},   // one edit
		{"caorl", friends, "carol"},  // two
		{"karl", friends, "carol"},   // two
		{"kaorl", friends, ""},       // three
		{"usr_2", friends, "user_2"}, // one edit; user_3 is two
		{"user_22", friends, "user_2"},
		{"user_4", friends, ""}, // user_2 and user_3 both one away
		{"user_2", friends, ""}, // a name itself: nothing to suggest
		{"zed", friends, ""},    // nothing near
		{"", friends, ""},
		{"hlep", commands, "help"},
		{"histroy", commands, "history"},
		{"tme", commands, "time"}, // one edit; "to" is two
		{"tx", []string{"to", "ti"}, ""},
		{"carol", []string{"carl", "karol"}, ""}, // both one away
	} {
		if got := suggest(tc.typed, tc.names); got != tc.want {
			t.Errorf("suggest(%q, %q) = %q, want %q", tc.typed, tc.names, got, tc.want)
		}
	}
}
