package network

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"p2pchat/network/wire"
)

func TestReadTable(t *testing.T) {
	good := "# friends\n\nalice 127.0.0.1 50000\nbob\t::1\t50001   # trailing comment\n  carol  [::1] 50002\ndave example.org 65535\n"
	tab, err := readTable(strings.NewReader(good), "peers.txt")
	if err != nil {
		t.Fatal(err)
	}
	want := []Friend{
		{Name: "alice", Host: "127.0.0.1", Port: 50000},
		{Name: "bob", Host: "::1", Port: 50001},
		{Name: "carol", Host: "::1", Port: 50002},
		{Name: "dave", Host: "example.org", Port: 65535},
	}
	got := tab.Friends()
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("row %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
	if a := mustLookup(t, tab, "bob").Addr(); a != "[::1]:50001" {
		t.Errorf("bob's address = %q", a)
	}
}

func TestReadTableRefusesBadTables(t *testing.T) {
	for _, tc := range []struct {
		name, text, want string
	}{
		{"duplicate", "a 127.0.0.1 1\nb 127.0.0.1 2\na 127.0.0.1 3\n", `peers:3: duplicate name "a" (first on line 1)`},
		{"port zero", "a 127.0.0.1 0\n", `peers:1: bad port "0": want a number from 1 to 65535`},
		{"port too big", "\n\na 127.0.0.1 65536\n", `peers:3: bad port "65536"`},
		{"port not a number", "a 127.0.0.1 http\n", `peers:1: bad port "http"`},
		{"missing column", "a 127.0.0.1\n", "peers:1: missing column: want NAME HOST PORT [ID], got 2 column(s)"},
		{"extra column", "a 127.0.0.1 1 x y z\n", "peers:1: too many columns"},
		{"slash in name", "a/b 127.0.0.1 1\n", `peers:1: bad name "a/b"`},
		{"long name", strings.Repeat("n", wire.MaxNameLen+1) + " 127.0.0.1 1\n", "peers:1: bad name"},
		{"bad host", "a under_score 1\n", `peers:1: bad host "under_score"`},
		{"bad id", "a 127.0.0.1 1 NOTANID\n", `peers:1: bad ID "NOTANID"`},
		{"zero id", "a 127.0.0.1 1 " + strings.Repeat("A", 52) + "\n", `peers:1: bad ID "` + strings.Repeat("A", 52) + `": the zero ID names nobody`},
		{"empty", "# nobody\n", "peers: no friends in the table"},
		{"shared address", "a 127.0.0.1 1\nb 127.0.0.1 2\nc 127.0.0.1 1\n", "peers:3: c has the address of a (127.0.0.1:1, line 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readTable(strings.NewReader(tc.text), "peers")
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %v, want an error starting %q", err, tc.want)
			}
		})
	}
}

func TestDefaultTable(t *testing.T) {
	tab := DefaultTable()
	for i, name := range []string{"user_1", "user_2", "user_3"} {
		f := mustLookup(t, tab, name)
		if f.Host != "127.0.0.1" || f.Port != 50000+i {
			t.Errorf("%s = %+v", name, f)
		}
	}
}

func TestReadTableGroups(t *testing.T) {
	const friends = "alice 127.0.0.1 1\nbob 127.0.0.1 2\ncarol 127.0.0.1 3\n"
	for _, tc := range []struct {
		name, text string
		want       []Group
	}{
		{"none", friends, []Group{}},
		{"after the friends", friends + "@trip alice bob carol\n@pair\tbob carol  # two\n",
			[]Group{{"trip", []string{"alice", "bob", "carol"}}, {"pair", []string{"bob", "carol"}}}},
		{"before its members", "@early carol alice\n" + friends, []Group{{"early", []string{"carol", "alice"}}}},
		{"of one", friends + "@me alice\n", []Group{{"me", []string{"alice"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := readTable(strings.NewReader(tc.text), "peers")
			if err != nil {
				t.Fatal(err)
			}
			got := tab.Groups()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
			for _, g := range tc.want {
				if m, ok := tab.Members(g.Name); !ok || !slices.Equal(m, g.Members) {
					t.Errorf("Members(%s) = %v, %v, want %v", g.Name, m, ok, g.Members)
				}
			}
			if all, ok := tab.Members(wire.AllGroup); !ok || !slices.Equal(all, []string{"alice", "bob", "carol"}) {
				t.Errorf("Members(all) = %v, %v", all, ok)
			}
			if _, ok := tab.Members("nosuch"); ok {
				t.Error("an unknown group has members")
			}
		})
	}
}

func TestReadTableRefusesBadGroups(t *testing.T) {
	const friends = "alice 127.0.0.1 1\nbob 127.0.0.1 2\ncarol 127.0.0.1 3\n"
	for _, tc := range []struct {
		name, text, want string
	}{
		{"unknown member", friends + "@trip alice zed\n", `peers:4: unknown member "zed" in @trip: not a friend in the table`},
		{"duplicate group", friends + "@trip alice\n\n@trip bob\n", "peers:6: duplicate group @trip (first on line 4)"},
		{"named like a friend", friends + "@bob alice carol\n", "peers:4: group @bob has the name of a friend (line 2)"},
		{"named like a later friend", "@dave alice\n" + friends + "dave 127.0.0.1 4\n", "peers:1: group @dave has the name of a friend (line 5)"},
		{"all redefined", friends + "@all alice bob\n", "peers:4: @all is built in (every friend in the table) and cannot be defined"},
		{"empty", friends + "@trip   # nobody yet\n", "peers:4: empty group @trip: list its members after the name"},
		{"member twice", friends + "@trip alice bob alice\n", "peers:4: alice is twice in @trip"},
		{"group in a group", friends + "@a alice\n@b @a bob\n", `peers:5: unknown member "@a" in @b`},
		{"bad name", friends + "@tr/ip alice\n", `peers:4: bad group name: bad name "tr/ip"`},
		{"no name", friends + "@ alice\n", `peers:4: bad group name: bad name ""`},
		{"only groups", "@trip alice\n", "peers: no friends in the table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readTable(strings.NewReader(tc.text), "peers")
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got %v, want an error starting %q", err, tc.want)
			}
		})
	}
}

func TestNewTableGroups(t *testing.T) {
	rows := []Friend{{Name: "a", Host: "127.0.0.1", Port: 1}, {Name: "b", Host: "127.0.0.1", Port: 2}}
	for _, tc := range []struct {
		name   string
		groups []Group
		want   string // "" for accepted
	}{
		{"fine", []Group{{"g", []string{"a", "b"}}}, ""},
		{"unknown member", []Group{{"g", []string{"a", "c"}}}, `unknown member "c" in @g`},
		{"duplicate", []Group{{"g", []string{"a"}}, {"g", []string{"b"}}}, "duplicate group @g"},
		{"like a friend", []Group{{"a", []string{"b"}}}, "group @a has the name of a friend"},
		{"all", []Group{{wire.AllGroup, []string{"a"}}}, "@all is built in"},
		{"empty", []Group{{"g", nil}}, "empty group @g"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewTable(rows, tc.groups...)
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.HasPrefix(err.Error(), tc.want)) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
