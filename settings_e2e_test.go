package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestSettingsFile: a damaged settings file gets one line and the
// defaults, and the chat runs; /time on is kept in the file, whole, and
// holds at the next start.
func TestSettingsFile(t *testing.T) {
	c := newChat(t, "user_1", "user_2")
	path := filepath.Join(c.dirs["user_1"], "settings")
	if err := os.WriteFile(path, []byte("time \x1b[31mon\nbell\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	u1 := c.startAs(t, "user_1")
	errs := u1.stderr.snapshot()
	want := "p2pchat: the settings file " + path + ` is damaged: line 1: "time \x1b[31mon" is not a setting and on or off; using the defaults (/time off, /bell on)`
	if len(errs) != 2 || errs[0] != want {
		t.Errorf("stderr, want the line %q, then the greeting:\n%s", want, quoteLines(errs))
	}
	u1.send(t, "/time")
	u1.stderr.waitLine(t, "/time is off")
	u1.send(t, "/time on")
	u1.stderr.waitLine(t, "Every line now starts with the time.")
	if b, err := os.ReadFile(path); err != nil || !strings.Contains(string(b), "\ntime on\nbell on\n") {
		t.Errorf("the settings file holds %q (%v), want time on and bell on", b, err)
	}
	if code := u1.signal(t, syscall.SIGTERM); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}

	u1 = c.startAs(t, "user_1")
	u1.send(t, "/time")
	u1.stderr.waitLine(t, "/time is on")
	if errs := u1.stderr.snapshot(); strings.Contains(strings.Join(errs, "\n"), "settings") {
		t.Errorf("stderr speaks of the settings:\n%s", quoteLines(errs))
	}
}

// TestSettingsFileLinked: a settings file planted as a link to a file
// elsewhere is not read through, gets one line, and is replaced, not
// written through, when a setting changes.
func TestSettingsFileLinked(t *testing.T) {
	c := newChat(t, "user_1", "user_2")
	outside := filepath.Join(t.TempDir(), "rc")
	if err := os.WriteFile(outside, []byte("time on\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(c.dirs["user_1"], "settings")
	if err := os.Symlink(outside, path); err != nil {
		t.Fatal(err)
	}
	u1 := c.startAs(t, "user_1")
	if errs := u1.stderr.snapshot(); len(errs) != 2 || errs[0] != "p2pchat: the settings file "+path+" is a link: not followed; using the defaults (/time off, /bell on)" {
		t.Errorf("stderr, want a line saying the settings file is a link, then the greeting:\n%s", quoteLines(errs))
	}
	u1.send(t, "/time")
	u1.stderr.waitLine(t, "/time is off")
	u1.send(t, "/bell off")
	u1.stderr.waitLine(t, "Messages no longer ring the bell.")
	if b, _ := os.ReadFile(outside); string(b) != "time on\n" {
		t.Errorf("the file outside was written: %q", b)
	}
	st, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	if !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want a regular file, 0600", path, st.Mode())
	}
}
