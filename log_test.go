package main

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// The log is rotated while running: a flood of log lines costs at most
// twice maxLogSize on disk, and no line is cut.
func TestLogRotatesWhileRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p2pchat.log")
	l, err := openLog(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	line := append(bytes.Repeat([]byte("x"), 999), '\n')
	for range 3 * maxLogSize / len(line) {
		if _, err := l.Write(line); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{path, path + ".old"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > maxLogSize || p == path+".old" && len(b) < maxLogSize/2 {
			t.Errorf("%s holds %d bytes, want at most %d (and the old one more than half)", p, len(b), maxLogSize)
		}
		if len(b) > 0 && b[len(b)-1] != '\n' {
			t.Errorf("%s ends in the middle of a line", p)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", p, st.Mode().Perm())
		}
	}
}
