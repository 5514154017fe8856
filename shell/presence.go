package shell

import (
	"fmt"
	"strings"
	"time"

	"p2pchat/network"
)

// seenWords says in plain words whether a friend is online: "online",
// "last seen 3 h ago", or "never seen".
func seenWords(p network.FriendStatus, now time.Time) string {
	switch {
	case p.Online:
		return "online"
	case p.LastSeen.IsZero():
		return "never seen"
	}
	return "last seen " + ago(p.LastSeen, now)
}

// ago says how long before now t was: "just now", "12 min ago", "3 h ago",
// "5 days ago".
func ago(t, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d/time.Hour))
	}
	return fmt.Sprintf("%d days ago", int(d/(24*time.Hour)))
}

func (s *Shell) who([]string) bool {
	var online []string
	for _, p := range s.cfg.Net.Status() {
		if p.Online {
			online = append(online, s.paint.Name(p.Name))
		}
	}
	if len(online) == 0 {
		s.ui.notice("Nobody is online now.")
		return false
	}
	s.ui.notice("Online now: " + strings.Join(online, ", "))
	return false
}
