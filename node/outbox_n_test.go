//go:build !soak

package node

// pingPongMessages is the ping-pong exchange of the normal suite; the soak
// build (-tags soak) runs the 10,000 of the issue.
const pingPongMessages = 2000
