package shell

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"p2pchat/network"
)

func TestParseLine(t *testing.T) {
	friends := []string{"user_2", "user_3"}
	long := strings.Repeat("é", network.MaxMessageRunes)
	for _, tc := range []struct {
		line    string
		want    action
		wantErr string
	}{
		{"user_2/hi", sendAction{"user_2", "hi"}, ""},
		{"user_2/a\tb/c/ é 日本 ", sendAction{"user_2", "a\tb/c/ é 日本 "}, ""},
		{"  user_3 /  spaced", sendAction{"user_3", "  spaced"}, ""},
		{"user_2/" + long, sendAction{"user_2", long}, ""},
		{"", nil, ""},
		{"   \t", nil, ""},
		{"/help", commandAction{name: "help", args: []string{}}, ""},
		{"  /peers  x y", commandAction{name: "peers", args: []string{"x", "y"}}, ""},
		{"/", nil, `a lone "/" is not a command`},
		{"hello", nil, `no "/" in that line: write friend/message, for example user_2/hello`},
		{"bob/hi", nil, `unknown friend "bob": your friends are user_2, user_3`},
		{"user_4/hi", nil, `unknown friend "user_4": your friends are user_2, user_3`}, // two names one edit away
		{"usr_2/hi", nil, `unknown friend "usr_2": did you mean user_2? (your friends are user_2, user_3)`},
		{"user_1/hi", nil, "you cannot send a message to yourself"},
		{"user_2/", nil, "empty message"},
		{"user_2/" + long + "x", nil, "message too long: 251 characters, at most 250; nothing was sent"},
	} {
		got, err := parseLine(tc.line, "user_1", friends)
		if tc.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
				t.Errorf("parseLine(%q) error = %v, want %q", tc.line, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseLine(%q): %v", tc.line, err)
			continue
		}
		if c, ok := got.(commandAction); ok && c.args == nil {
			c.args = []string{}
			got = c
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseLine(%q) = %#v, want %#v", tc.line, got, tc.want)
		}
	}
}

func TestParseLineSelfAndEmptyAreNetworkErrors(t *testing.T) {
	if _, err := parseLine("me/x", "me", []string{"you"}); !errors.Is(err, network.ErrSelf) {
		t.Errorf("got %v, want network.ErrSelf", err)
	}
	if _, err := parseLine("you/", "me", []string{"you"}); !errors.Is(err, network.ErrEmptyMessage) {
		t.Errorf("got %v, want network.ErrEmptyMessage", err)
	}
}

// With /to bob, any line goes to bob whole, unless it starts with a
// friend's NAME/ or is a command.
func TestParseLineTo(t *testing.T) {
	friends := []string{"bob", "carol"}
	for _, tc := range []struct {
		line string
		want action
	}{
		{"see http://x", sendAction{to: "bob", text: "see http://x"}},
		{"hello", sendAction{to: "bob", text: "hello"}},
		{"carol/hi", sendAction{to: "carol", text: "hi"}},
		{"bob/hi", sendAction{to: "bob", text: "hi"}},
		{"dave/hi", sendAction{to: "bob", text: "dave/hi"}},
		{"/peers", commandAction{name: "peers", args: []string{}}},
	} {
		got, err := parseLineTo(tc.line, "alice", friends, "bob")
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseLineTo(%q) = %#v, %v; want %#v", tc.line, got, err, tc.want)
		}
	}
	if _, err := parseLineTo("alice/x", "alice", friends, "bob"); !errors.Is(err, network.ErrSelf) {
		t.Errorf("to oneself while talking to bob: %v, want ErrSelf", err)
	}
}
