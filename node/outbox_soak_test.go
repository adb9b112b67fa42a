//go:build soak

package node

const pingPongMessages = 10000
