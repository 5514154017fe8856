package main

// A data directory an attacker could plant files in is refused, and no file
// in it is opened through a planted link.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataDirPlantedFiles(t *testing.T) {
	c := newChat(t, "user_1", "user_2")
	for _, tc := range []struct {
		name  string
		plant func(t *testing.T, dir, outside string)
		want  string // in the one line on stderr
	}{
		{"writable by others", func(t *testing.T, dir, _ string) {
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
		}, "is writable by others"},
		{"log linked elsewhere", func(t *testing.T, dir, outside string) {
			if err := os.Symlink(outside, filepath.Join(dir, "p2pchat.log")); err != nil {
				t.Fatal(err)
			}
		}, "cannot open the log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			outside := filepath.Join(t.TempDir(), "rc")
			if err := os.WriteFile(outside, []byte("# a shell rc file\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			tc.plant(t, dir, outside)
			p := start(t, "user_1", []string{"--peers", c.peersFile, "--data-dir", dir, "user_1"})
			if code := p.wait(t); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			errs := p.stderr.snapshot()
			if len(errs) != 1 || !strings.Contains(errs[0], tc.want) {
				t.Errorf("stderr:\n%s\nwant one line saying %q", quoteLines(errs), tc.want)
			}
			if b, _ := os.ReadFile(outside); string(b) != "# a shell rc file\n" {
				t.Errorf("the file outside was written: %q", b)
			}
			if st, _ := os.Stat(outside); st.Mode().Perm() != 0o644 {
				t.Errorf("the file outside was chmodded to %v", st.Mode().Perm())
			}
		})
	}
}
