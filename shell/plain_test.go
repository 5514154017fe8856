package shell

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestReadLine(t *testing.T) {
	long := strings.Repeat("x", maxPlainLine+10)
	br := bufio.NewReaderSize(strings.NewReader("a/b\r\nc/d\n"+long+"\nlast/without newline"), maxPlainLine)
	for _, want := range []struct {
		line string
		err  error
	}{
		{"a/b", nil},
		{"c/d", nil},
		{long[:maxPlainLine], errLineTooLong},
		{"last/without newline", io.EOF},
		{"", io.EOF},
	} {
		line, err := readLine(br)
		if line != want.line || !errors.Is(err, want.err) {
			t.Errorf("readLine = %.20q (%d bytes), %v; want %.20q, %v", line, len(line), err, want.line, want.err)
		}
	}
}
