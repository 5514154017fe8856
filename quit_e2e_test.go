package main

// /quit right after a message: the message still goes out, and what
// cannot go out is named in one line.

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestQuitWaitsForMessagesInFlight(t *testing.T) {
	for _, tc := range []struct {
		name       string
		friendUp   bool
		wantNotice string // the last line on stderr, "" for none beyond the greeting
	}{
		{"friend online", true, ""},
		{"friend offline", false, "1 message waits (1 to user_2); they go out when you are both online."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newChat(t, "user_2", "user_3")
			var u2 *process
			if tc.friendUp {
				u2 = c.startAs(t, "user_2")
			}
			u3 := c.startAs(t, "user_3")
			u3.send(t, "user_2/hi")
			u3.send(t, "/quit")
			if code := u3.wait(t); code != 0 {
				t.Errorf("user_3 exited with status %d, want 0", code)
			}
			errs := u3.stderr.snapshot()
			if tc.friendUp {
				u2.stdout.waitLine(t, messageFrom("user_3", "hi"))
				if i := slices.IndexFunc(u2.stderr.snapshot(), func(l string) bool { return strings.Contains(l, "WARNING") }); i >= 0 {
					t.Errorf("user_2 warned about a friend who quit cleanly: %q", u2.stderr.snapshot()[i])
				}
				if slices.ContainsFunc(errs, func(l string) bool { return strings.Contains(l, "wait") && strings.Contains(l, "go out") }) {
					t.Errorf("user_3 said something waits although user_2 was online:\n%s", quoteLines(errs))
				}
				return
			}
			if len(errs) == 0 || errs[len(errs)-1] != tc.wantNotice {
				t.Errorf("user_3's stderr ends with\n%s\nwant %q", quoteLines(errs), tc.wantNotice)
			}
		})
	}
}

// --exit-when-done: at the end of piped input, wait until what was sent is
// delivered, then exit 0; or, after at most 10 s, say what waits and exit 1.
func TestExitWhenDone(t *testing.T) {
	for _, tc := range []struct {
		name     string
		friendUp bool
		status   int
	}{
		{"friend online", true, 0},
		{"friend offline", false, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newChat(t, "user_2", "user_3")
			var u2 *process
			if tc.friendUp {
				u2 = c.startAs(t, "user_2")
			}
			u3 := c.startAs(t, "user_3", "--exit-when-done")
			u3.send(t, "user_2/backup finished")
			if err := u3.stdin.Close(); err != nil {
				t.Fatal(err)
			}
			// Offline, it waits the full 10 s: longer than the harness's
			// usual wait.
			select {
			case <-u3.exited:
			case <-time.After(3 * waitTimeout):
				t.Fatalf("user_3 still running after %v", 3*waitTimeout)
			}
			if code := u3.cmd.ProcessState.ExitCode(); code != tc.status {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tc.status, quoteLines(u3.stderr.snapshot()))
			}
			errs := u3.stderr.snapshot()
			if tc.friendUp {
				u2.stdout.waitLine(t, messageFrom("user_3", "backup finished"))
				return
			}
			if len(errs) == 0 || !strings.HasPrefix(errs[len(errs)-1], "1 message waits (1 to user_2)") {
				t.Errorf("stderr ends with\n%s\nwant what still waits", quoteLines(errs))
			}
		})
	}
}
