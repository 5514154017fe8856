package shell

import (
	"fmt"
	"slices"
	"strings"
)

// maxSuggestEdits is how many edits away a name may be from what was typed
// to be suggested.
const maxSuggestEdits = 2

// suggest returns the name of names nearest to typed (Levenshtein
// distance, in characters) when it is 1 to maxSuggestEdits edits away and
// no other name is as near; otherwise "". Nearest, not the only one within
// reach: names alike, such as user_2 and user_3, are all within two edits
// of a typo of one of them.
func suggest(typed string, names []string) string {
	if slices.Contains(names, typed) {
		return ""
	}
	found, best, ties := "", maxSuggestEdits+1, 0
	for _, n := range names {
		if diff := len([]rune(typed)) - len([]rune(n)); diff > maxSuggestEdits || diff < -maxSuggestEdits {
			continue // too far apart to look closer
		}
		switch d := editDistance(typed, n); {
		case d < best:
			found, best, ties = n, d, 1
		case d == best && n != found:
			ties++
		}
	}
	if ties != 1 {
		return ""
	}
	return found
}

// unknownFriend is the error for a name that is no friend's, with the
// friend it may have been meant for.
func unknownFriend(name string, friends []string) error {
	if n := suggest(name, friends); n != "" {
		return fmt.Errorf("unknown friend %q: did you mean %s? (your friends are %s)", name, n, strings.Join(friends, ", "))
	}
	return fmt.Errorf("unknown friend %q: your friends are %s", name, strings.Join(friends, ", "))
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

// unknownGroup is the error for an @name that is no group's, with the
// group it may have been meant for.
func unknownGroup(name string, groups []string) error {
	if g := suggest(name, strings.Split(groupList(groups), ", ")); g != "" {
		return fmt.Errorf("unknown group %q: did you mean %s? (your groups are %s)", name, g, groupList(groups))
	}
	return fmt.Errorf("unknown group %q: your groups are %s", name, groupList(groups))
}
