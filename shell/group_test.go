package shell_test

import (
	"errors"
	"reflect"
	"testing"

	"p2pchat/network"
)

// alice's groups in these tests: @trip with bob and carol, @pair with bob.
var runGroups = []network.Group{{Name: "trip", Members: []string{"alice", "bob", "carol"}}, {Name: "pair", Members: []string{"alice", "bob"}}}

func TestRunGroupLines(t *testing.T) {
	for _, tc := range []struct {
		name   string
		lines  []string
		sends  []fakeSend
		errOut [][]string
	}{
		{name: "a group", lines: []string{"@trip/hi all", " @pair / spaced"}, sends: []fakeSend{{"@trip", "hi all"}, {"@pair", " spaced"}}},
		{name: "@all", lines: []string{"@all/everyone"}, sends: []fakeSend{{"@all", "everyone"}}},
		{name: "unknown group", lines: []string{"@band/hi"}, errOut: [][]string{line(`unknown group "@band": your groups are @all, @trip, @pair`)}},
		{name: "a friend's name is no group", lines: []string{"@bob/hi"}, errOut: [][]string{line(`unknown group "@bob"`)}},
		{name: "empty", lines: []string{"@trip/", "@trip/   "}, errOut: [][]string{line("empty message"), line("empty message")}},
		{name: "/to a group", lines: []string{"/to @trip", "see you there", "bob/just bob", "@all/all of you", "/to", "/to @band"},
			sends:  []fakeSend{{"@trip", "see you there"}, {"bob", "just bob"}, {"@all", "all of you"}},
			errOut: [][]string{line("Every line now goes to @trip"), line("Lines need a friend/ again."), line(`unknown group "@band"`)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startRun(t, runOptions{groups: runGroups})
			for _, l := range tc.lines {
				h.typeLine(l)
			}
			h.barrier()
			var got []fakeSend
			for _, s := range h.net.sent() {
				if s.to != "bob" || len(s.text) < len(barrierText) || s.text[:len(barrierText)] != barrierText {
					got = append(got, s)
				}
			}
			if !reflect.DeepEqual(got, tc.sends) {
				t.Errorf("sends %q, want %q", got, tc.sends)
			}
			checkLines(t, "Err", h.err, tc.errOut)
		})
	}
}

func TestRunGroupEvents(t *testing.T) {
	reach := &network.ReachError{Name: "carol", Addr: "127.0.0.1:4002", Err: errors.New("connection refused")}
	for _, tc := range []struct {
		name   string
		events []network.Event
		out    [][]string
		errOut [][]string
	}{
		{
			name:   "received for a group",
			events: []network.Event{network.MessageReceived{From: "bob", Seq: 2, Group: "trip", Text: "hi all"}, network.MessageReceived{From: "carol", Seq: 1, Group: network.AllGroup, Text: "and you"}},
			out:    [][]string{line("Message from bob to @trip: hi all"), line("Message from carol to @all: and you")},
		},
		{
			name:   "delivered to every member",
			events: []network.Event{network.GroupReport{Group: "trip", Text: "hi all", Delivered: []string{"bob", "carol"}}},
			errOut: [][]string{line(`Delivered to @trip (bob, carol): "hi all"`)},
		},
		{
			name: "one member waits, and gets it later",
			events: []network.Event{
				network.GroupReport{Group: "trip", Text: "hi all", Delivered: []string{"bob"}, Queued: []string{"carol"}, Why: map[string]error{"carol": reach}},
				network.MessageDelivered{To: "carol", Seq: 4, Group: "trip", Text: "hi all", Sent: past, WasQueued: true},
			},
			errOut: [][]string{
				line(`@trip: delivered to 1 of 2 (bob); queued for carol (offline): "hi all"`),
				line(`Delivered to carol (@trip): "hi all" (written 2024-03-01 10:00)`),
			},
		},
		{
			name:   "all wait",
			events: []network.Event{network.GroupReport{Group: network.AllGroup, Text: "x", Queued: []string{"bob", "carol"}}},
			errOut: [][]string{line(`@all: queued for bob, carol (offline): "x"`)},
		},
		{
			name:   "not recorded",
			events: []network.Event{network.GroupReport{Group: "trip", Text: "x", Failed: []string{"bob", "carol"}, Why: map[string]error{"bob": network.ErrNoSpace, "carol": network.ErrNoSpace}}},
			errOut: [][]string{line(`@trip: not recorded for bob (no space left on device), so not sent again; not recorded for carol (no space left on device), so not sent again: "x"`)},
		},
		{
			name:   "a copy queued from an earlier run",
			events: []network.Event{network.MessageQueued{To: "carol", Group: "trip", Waiting: 3, Err: reach}},
			errOut: [][]string{line("carol is offline: the copy for @trip is queued, 3 waiting")},
		},
		{
			name:   "a group tag refused",
			events: []network.Event{network.MessageRefused{From: "bob", Group: "band", Err: errors.New("unknown group @band in our table")}},
			errOut: [][]string{line("WARNING: bob sent a message to @band, not shown: unknown group @band in our table. Are your tables the same?")},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startRun(t, runOptions{groups: runGroups})
			for _, ev := range tc.events {
				h.net.push(t, ev)
			}
			h.barrier()
			checkLines(t, "Out", h.out, tc.out)
			checkLines(t, "Err", h.err, tc.errOut)
		})
	}
}

func TestRunGroupCommands(t *testing.T) {
	h := startRun(t, runOptions{groups: runGroups, setup: func(h *runHarness) {
		h.net.history["bob"] = []network.HistoryEntry{
			{Outgoing: true, Group: "trip", Text: "to the trip", Sent: past, At: past, Delivered: true},
			{Group: network.AllGroup, Text: "to all", Sent: past, At: past},
			{Text: "just to you", Sent: past, At: past},
		}
		h.net.groupLog = map[string][]network.GroupEntry{"trip": {
			{Text: "all there", Sent: past, At: past, To: []string{"bob", "carol"}, Delivered: []string{"bob", "carol"}},
			{From: "carol", Text: "hi \x1b[2J", Sent: past, At: past},
			{Text: "one waits", Sent: past, At: past, To: []string{"bob", "carol"}, Delivered: []string{"bob"}},
		}}
	}})
	h.typeLine("/history bob")
	h.typeLine("/peers")
	h.typeLine("/history @trip")
	h.typeLine("/history @trip 1")
	h.typeLine("/history @all")
	h.typeLine("/history @band")
	h.barrier()
	h.waitLine("Err", h.err, line("2024-03-01 10:00  you → @trip: all there  [delivered]"))
	h.waitLine("Err", h.err, line(`2024-03-01 10:00  carol → @trip: hi \x1b[2J`))
	h.waitLine("Err", h.err, line("2024-03-01 10:00  you → @trip: one waits  [delivered to 1 of 2; waiting: carol]"))
	h.waitLine("Err", h.err, line("No messages in @all yet."))
	h.waitLine("Err", h.err, line(`unknown group "@band": your groups are @all, @trip, @pair`))
	if got, want := h.net.historyCalls(), []fakeHistoryCall{{"bob", 20}, {"@trip", 20}, {"@trip", 1}, {"@all", 20}}; !reflect.DeepEqual(got, want) {
		t.Errorf("history calls %v, want %v", got, want)
	}
	h.waitLine("Err", h.err, line("2024-03-01 10:00  you → bob (@trip): to the trip  [delivered]"))
	h.waitLine("Err", h.err, line("2024-03-01 10:00  bob → you (@all): to all"))
	h.waitLine("Err", h.err, line("2024-03-01 10:00  bob → you: just to you"))
	h.waitLine("Err", h.err, line("GROUP", "MEMBERS"))
	h.waitLine("Err", h.err, line("@all", "every friend"))
	h.waitLine("Err", h.err, line("@trip", "alice, bob, carol"))
	h.waitLine("Err", h.err, line("@pair", "alice, bob"))
}
