package shell

import (
	"testing"
	"time"

	"p2pchat/network"
)

func TestSeenWords(t *testing.T) {
	now := time.Date(2026, 12, 1, 14, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		status network.FriendStatus
		want   string
	}{
		{network.FriendStatus{Online: true, LastSeen: now}, "online"},
		{network.FriendStatus{}, "never seen"},
		{network.FriendStatus{LastSeen: now.Add(-20 * time.Second)}, "last seen just now"},
		{network.FriendStatus{LastSeen: now.Add(time.Minute)}, "last seen just now"}, // our clock went back
		{network.FriendStatus{LastSeen: now.Add(-2*time.Minute - 59*time.Second)}, "last seen 2 min ago"},
		{network.FriendStatus{LastSeen: now.Add(-59 * time.Minute)}, "last seen 59 min ago"},
		{network.FriendStatus{LastSeen: now.Add(-3*time.Hour - 40*time.Minute)}, "last seen 3 h ago"},
		{network.FriendStatus{LastSeen: now.Add(-47 * time.Hour)}, "last seen 47 h ago"},
		{network.FriendStatus{LastSeen: now.Add(-5 * 24 * time.Hour)}, "last seen 5 days ago"},
	} {
		if got := seenWords(tc.status, now); got != tc.want {
			t.Errorf("online %v, last seen %v before now: %q, want %q", tc.status.Online, now.Sub(tc.status.LastSeen), got, tc.want)
		}
	}
}
