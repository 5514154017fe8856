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

// Group is a table line "@NAME friend friend …": friends who write to
// all of them at once with @NAME/message. Everyone in it has the same
// table, so the same groups.
type Group struct {
	Name    string   // without the '@'
	Members []string // friends of the table, each once, in the line's order
}

// Table is the static list of friends known in advance, this instance's own
// row included, and the groups. It is read once at start and never changes.
type Table struct {
	friends []Friend
	index   map[string]int
	groups  []Group
	gindex  map[string]int
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

// NewTable builds a table from rows and groups, checking each as readTable
// does.
func NewTable(friends []Friend, groups ...Group) (*Table, error) {
	t := newTable()
	for _, f := range friends {
		if err := t.add(f); err != nil {
			return nil, err
		}
	}
	for _, g := range groups {
		if err := t.addGroup(g); err != nil {
			return nil, err
		}
	}
	return t, nil
}

func newTable() *Table {
	return &Table{index: make(map[string]int), gindex: make(map[string]int)}
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
// or one group a line as "@NAME FRIEND FRIEND …", columns separated by
// spaces or tabs, '#' starting a comment, blank lines ignored. ID, where
// given, pins the friend's identity as p2pchat --id prints it. A group's
// members are friends of the table, on lines before or after it. HOST "-"
// (NoHost) is a friend with no address to dial, behind a NAT: it is never
// dialled, and listens on PORT on every interface.
// An error names the place as "file:line: reason".
func readTable(r io.Reader, file string) (*Table, error) {
	t := newTable()
	lines := make(map[string]int)  // name -> line it was first seen on
	glines := make(map[string]int) // group -> its line
	var groups []Group
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
		if name, ok := strings.CutPrefix(cols[0], "@"); ok {
			g := Group{Name: name, Members: cols[1:]}
			if err := checkGroupLine(g); err != nil {
				return nil, fail("%v", err)
			}
			if first, dup := glines[name]; dup {
				return nil, fail("duplicate group @%s (first on line %d)", name, first)
			}
			glines[name] = n
			groups = append(groups, g)
			continue
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
			if host != NoHost && strings.EqualFold(g.Host, host) && g.Port == port {
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
	// Members may be friends of later lines: groups are checked at the end.
	for _, g := range groups {
		if first, ok := lines[g.Name]; ok {
			return nil, fmt.Errorf("%s:%d: group @%s has the name of a friend (line %d): call one of them otherwise", file, glines[g.Name], g.Name, first)
		}
		if err := t.addGroup(g); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, glines[g.Name], err)
		}
	}
	return t, nil
}

// checkGroupLine checks what a group line says by itself: its name and
// that it lists each member once.
func checkGroupLine(g Group) error {
	if err := wire.CheckName(g.Name); err != nil {
		return fmt.Errorf("bad group name: %w", err)
	}
	if g.Name == wire.AllGroup {
		return fmt.Errorf("@%s is built in (every friend in the table) and cannot be defined", wire.AllGroup)
	}
	if len(g.Members) == 0 {
		return fmt.Errorf("empty group @%s: list its members after the name", g.Name)
	}
	seen := make(map[string]bool)
	for _, m := range g.Members {
		if seen[m] {
			return fmt.Errorf("%s is twice in @%s", m, g.Name)
		}
		seen[m] = true
	}
	return nil
}

// addGroup adds g, whose members must all be friends of t already.
func (t *Table) addGroup(g Group) error {
	if err := checkGroupLine(g); err != nil {
		return err
	}
	if _, dup := t.gindex[g.Name]; dup {
		return fmt.Errorf("duplicate group @%s", g.Name)
	}
	if _, ok := t.index[g.Name]; ok {
		return fmt.Errorf("group @%s has the name of a friend", g.Name)
	}
	for _, m := range g.Members {
		if _, ok := t.index[m]; !ok {
			return fmt.Errorf("unknown member %q in @%s: not a friend in the table", m, g.Name)
		}
	}
	t.gindex[g.Name] = len(t.groups)
	t.groups = append(t.groups, Group{Name: g.Name, Members: append([]string(nil), g.Members...)})
	return nil
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

// Groups returns the table's groups in table order; @all is not among
// them.
func (t *Table) Groups() []Group {
	out := make([]Group, len(t.groups))
	for i, g := range t.groups {
		out[i] = Group{Name: g.Name, Members: append([]string(nil), g.Members...)}
	}
	return out
}

// Members returns the members of the group named name (without '@'):
// every friend for wire.AllGroup, else the table's group.
func (t *Table) Members(name string) ([]string, bool) {
	if name == wire.AllGroup {
		return t.Names(), true
	}
	i, ok := t.gindex[name]
	if !ok {
		return nil, false
	}
	return append([]string(nil), t.groups[i].Members...), true
}

// Names returns every name in table order.
func (t *Table) Names() []string {
	names := make([]string, len(t.friends))
	for i, f := range t.friends {
		names[i] = f.Name
	}
	return names
}

func checkHost(host string) error {
	if net.ParseIP(host) != nil || host == NoHost {
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
