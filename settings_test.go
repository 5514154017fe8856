package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"p2pchat/shell"
)

func TestParseSettings(t *testing.T) {
	def := shell.DefaultSettings()
	for _, tc := range []struct {
		name, text string
		want       shell.Settings
		err        string // "" for none
	}{
		{"empty", "", def, ""},
		{"both", "time on\nbell off\n", shell.Settings{Time: true}, ""},
		{"comments, blanks and spaces", "# kept\n\n  time   on  \n", shell.Settings{Time: true, Bell: true}, ""},
		{"the last word counts", "time on\ntime off\n", def, ""},
		{"no newline at the end", "bell off", shell.Settings{}, ""},
		{"not on or off", "time yes\n", def, `line 1: "time yes" is not a setting and on or off`},
		{"unknown setting", "time on\ncolour on\n", def, `line 2: no setting "colour"`},
		{"one word", "time\n", def, `line 1: "time"`},
		{"garbage", "\x00\x01\xff\xfe", def, `line 1: "\x00\x01\xff\xfe" is not a setting`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSettings([]byte(tc.text))
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Errorf("error %v, want one containing %q", err, tc.err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// A missing settings file gives the defaults quietly; a damaged one, or one
// that is not a regular file, gives them with an error naming the file.
func TestLoadSettings(t *testing.T) {
	def := shell.DefaultSettings()
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, path string)
		want  shell.Settings
		err   string
	}{
		{"missing", func(*testing.T, string) {}, def, ""},
		{"kept", write("time on\nbell off\n"), shell.Settings{Time: true}, ""},
		{"damaged", write("time on\nbell maybe\n"), def, "is damaged: line 2"},
		{"too long", write(strings.Repeat("# x\n", maxSettingsSize)), def, "is damaged: over 4096 bytes"},
		{"a link", func(t *testing.T, path string) {
			target := filepath.Join(t.TempDir(), "elsewhere")
			if err := os.WriteFile(target, []byte("time on\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(target, path); err != nil {
				t.Fatal(err)
			}
		}, def, "is a link: not followed"},
		{"a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o700); err != nil {
				t.Fatal(err)
			}
		}, def, "is not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, settingsFile)
			tc.setup(t, path)
			got, err := loadSettings(dir)
			switch {
			case tc.err == "" && err != nil:
				t.Errorf("error %v, want none", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), path)):
				t.Errorf("error %v, want one naming %s and containing %q", err, path, tc.err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func write(text string) func(t *testing.T, path string) {
	return func(t *testing.T, path string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// Saved settings read back the same, owner-only, with no file left over;
// saving replaces a link rather than writing through it.
func TestSaveSettings(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, settingsFile)
	target := filepath.Join(t.TempDir(), "elsewhere")
	if err := os.WriteFile(target, []byte("untouched"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	for _, s := range []shell.Settings{{Time: true}, {Bell: true}, {Time: true, Bell: true}, {}} {
		if err := saveSettings(dir, s); err != nil {
			t.Fatal(err)
		}
		got, err := loadSettings(dir)
		if err != nil || got != s {
			t.Errorf("saved %+v, read back %+v, %v", s, got, err)
		}
		st, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want a regular file, 0600", path, st.Mode())
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 1 {
			t.Errorf("the data directory holds %d files, want only %s", len(entries), settingsFile)
		}
	}
	if b, _ := os.ReadFile(target); string(b) != "untouched" {
		t.Errorf("the link's target now holds %q", b)
	}
}

// A settings file that cannot be written says why.
func TestSaveSettingsFails(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "gone")
	err := saveSettings(dir, shell.Settings{})
	if err == nil || !strings.HasPrefix(err.Error(), "cannot write the settings: ") {
		t.Errorf("error %v, want one starting %q", err, "cannot write the settings: ")
	}
}
