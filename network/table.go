package network

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"p2pchat/network/wire"
)

// Friend is one row of the table: a person and where their instance listens.
type Friend struct {
	Name string
	Host string // IPv4 or IPv6 address, or a host name
	Port int
	ID   ID // the friend's identity if the table pins it, else zero
}

// Addr is the friend's address in host:port form, ready to dial.
func (f Friend) Addr() string { return net.JoinHostPort(f.Host, strconv.Itoa(f.Port)) }

// Table is the static list of friends known in advance, this instance's own
// row included. It is read once at start and never changes.
type Table struct {
	friends []Friend
	index   map[string]int
}

// DefaultTable is the built-in table: user_1, user_2 and user_3 on
// 127.0.0.1 ports 50000, 50001 and 50002.
func DefaultTable() *Table {
	t, err := NewTable([]Friend{
		{Name: "user_1", Host: "127.0.0.1", Port: 50000},
		{Name: "user_2", Host: "127.0.0.1", Port: 50001},
		{Name: "user_3", Host: "127.0.0.1", Port: 50002},
	})
	if err != nil {
		panic(err) // the built-in rows are constants
	}
	return t
}

// NewTable builds a table from rows, checking each as readTable does.
func NewTable(friends []Friend) (*Table, error) {
	t := &Table{index: make(map[string]int)}
	for _, f := range friends {
		if err := t.add(f); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// LoadTable reads the table from the file at path; see readTable.
func LoadTable(path string) (*Table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readTable(f, path)
}

// readTable parses a table: one friend a line as "NAME HOST PORT [ID]",
// columns separated by spaces or tabs, '#' starting a comment, blank lines
// ignored. ID, where given, pins the friend's identity as p2pchat --id
// prints it.
// An error names the place as "file:line: reason".
func readTable(r io.Reader, file string) (*Table, error) {
	t := &Table{index: make(map[string]int)}
	lines := make(map[string]int) // name -> line it was first seen on
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		cols := strings.Fields(line)
		if len(cols) == 0 {
			continue
		}
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", file, n, fmt.Sprintf(format, args...))
		}
		if len(cols) < 3 {
			return nil, fail("missing column: want NAME HOST PORT [ID], got %d column(s)", len(cols))
		}
		if len(cols) > 4 {
			return nil, fail("too many columns: want NAME HOST PORT [ID], got %d", len(cols))
		}
		var id ID
		if len(cols) == 4 {
			var err error
			if id, err = ParseID(cols[3]); err != nil {
				return nil, fail("%v", err)
			}
		}
		port, err := strconv.Atoi(cols[2])
		if err != nil || port < 1 || port > 65535 {
			return nil, fail("bad port %q: want a number from 1 to 65535", cols[2])
		}
		if first, dup := lines[cols[0]]; dup {
			return nil, fail("duplicate name %q (first on line %d)", cols[0], first)
		}
		host := strings.TrimSuffix(strings.TrimPrefix(cols[1], "["), "]")
		// Two rows on one address would have each friend's messages
		// reach whoever listens there; one host with several ports is
		// fine.
		for _, g := range t.friends {
			if strings.EqualFold(g.Host, host) && g.Port == port {
				return nil, fail("%s has the address of %s (%s, line %d): two friends cannot share one", cols[0], g.Name, g.Addr(), lines[g.Name])
			}
		}
		if err := t.add(Friend{Name: cols[0], Host: host, Port: port, ID: id}); err != nil {
			return nil, fail("%v", err)
		}
		lines[cols[0]] = n
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(t.friends) == 0 {
		return nil, fmt.Errorf("%s: no friends in the table", file)
	}
	return t, nil
}

func (t *Table) add(f Friend) error {
	if err := wire.CheckName(f.Name); err != nil {
		return err
	}
	if err := checkHost(f.Host); err != nil {
		return err
	}
	if f.Port < 1 || f.Port > 65535 {
		return fmt.Errorf("bad port %d: want a number from 1 to 65535", f.Port)
	}
	if _, dup := t.index[f.Name]; dup {
		return fmt.Errorf("duplicate name %q", f.Name)
	}
	t.index[f.Name] = len(t.friends)
	t.friends = append(t.friends, f)
	return nil
}

// Lookup returns the row for name.
func (t *Table) Lookup(name string) (Friend, bool) {
	i, ok := t.index[name]
	if !ok {
		return Friend{}, false
	}
	return t.friends[i], true
}

// Friends returns every row in table order.
func (t *Table) Friends() []Friend { return append([]Friend(nil), t.friends...) }

// Names returns every name in table order.
func (t *Table) Names() []string {
	names := make([]string, len(t.friends))
	for i, f := range t.friends {
		names[i] = f.Name
	}
	return names
}

func checkHost(host string) error {
	if net.ParseIP(host) != nil {
		return nil
	}
	if host == "" || len(host) > 253 {
		return fmt.Errorf("bad host %q", host)
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("bad host %q: want an IP address or a host name", host)
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("bad host %q: want an IP address or a host name", host)
			}
		}
	}
	return nil
}
