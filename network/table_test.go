package network

import (
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
