//go:build race

package node

// dirTestNodes under the race detector: see directory_size_test.go. Eight
// still makes the fan-out (7 messages) costlier than a directory lookup
// (at most 3), so the assertion can fail.
const dirTestNodes = 8
