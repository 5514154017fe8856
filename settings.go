package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"p2pchat/shell"
)

// settingsFile is the file in the data directory that keeps what /time
// and /bell set, a line each:
//
//	time off
//	bell on
const settingsFile = "settings"

// maxSettingsSize bounds what is read of the settings file; it holds a
// few dozen bytes.
const maxSettingsSize = 4 << 10

// loadSettings reads the settings kept in dir. A missing file gives the
// defaults; so does a damaged one, with an error that says what is wrong
// with it.
func loadSettings(dir string) (shell.Settings, error) {
	s := shell.DefaultSettings()
	path := filepath.Join(dir, settingsFile)
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if errors.Is(err, syscall.ELOOP) {
		return s, fmt.Errorf("the settings file %s is a link: not followed", path)
	}
	if err != nil {
		return s, fmt.Errorf("cannot read the settings (%s): %w", path, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return s, fmt.Errorf("the settings file %s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSettingsSize+1))
	if err != nil {
		return s, fmt.Errorf("cannot read the settings (%s): %w", path, err)
	}
	if len(b) > maxSettingsSize {
		return s, fmt.Errorf("the settings file %s is damaged: over %d bytes", path, maxSettingsSize)
	}
	got, err := parseSettings(b)
	if err != nil {
		return s, fmt.Errorf("the settings file %s is damaged: %w", path, err)
	}
	return got, nil
}

// parseSettings reads the lines of a settings file. A setting not given
// keeps its default.
func parseSettings(b []byte) (shell.Settings, error) {
	s := shell.DefaultSettings()
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 || f[1] != "on" && f[1] != "off" {
			return shell.DefaultSettings(), fmt.Errorf("line %d: %q is not a setting and on or off", n, clip(line))
		}
		on := f[1] == "on"
		switch f[0] {
		case "time":
			s.Time = on
		case "bell":
			s.Bell = on
		default:
			return shell.DefaultSettings(), fmt.Errorf("line %d: no setting %q", n, clip(f[0]))
		}
	}
	return s, nil
}

// clip shortens what is quoted from a damaged file.
func clip(s string) string {
	if r := []rune(s); len(r) > 40 {
		return string(r[:40]) + "…"
	}
	return s
}

// saveSettings keeps s in dir, replacing the file whole: written to a new
// file of its own, owner-only, then renamed over the old one, so that a
// crash leaves either the old settings or the new.
func saveSettings(dir string, s shell.Settings) error {
	onOff := func(on bool) string {
		if on {
			return "on"
		}
		return "off"
	}
	text := fmt.Sprintf("# p2pchat settings: /time and /bell change them\ntime %s\nbell %s\n", onOff(s.Time), onOff(s.Bell))
	// os.CreateTemp opens with O_EXCL, mode 0600: never through a link.
	f, err := os.CreateTemp(dir, settingsFile+".*.tmp")
	if err != nil {
		return fmt.Errorf("cannot write the settings: %w", err)
	}
	tmp := f.Name()
	_, err = f.WriteString(text)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, settingsFile))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("cannot write the settings: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // the rename, durable
		d.Close()
	}
	return nil
}
