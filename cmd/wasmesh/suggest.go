package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// closestVerb returns the visible verb nearest to typed by edit distance,
// or "" when none is close enough to be a plausible typo (more than a third
// of the word, at least 2 edits, would be a guess rather than a fix).
func closestVerb(cmds []*cli.Command, typed string) string {
	typed = strings.ToLower(typed)
	best, bestD := "", -1
	for _, c := range cmds {
		if c.Hidden {
			continue
		}
		for _, name := range c.Names() {
			d := levenshtein(typed, name)
			if bestD < 0 || d < bestD {
				best, bestD = c.Name, d
			}
		}
	}
	limit := max(2, len(typed)/3)
	if bestD < 0 || bestD > limit {
		return ""
	}
	return best
}

// levenshtein is the edit distance of a and b (insertions, deletions,
// substitutions), over bytes: verbs are ASCII.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
