//go:build !race

package node

// dirTestNodes is the cluster size of TestDirectoryCluster: 20 in-process
// nodes in a plain test run. Under the race detector (the CI suite) the
// same test runs on fewer nodes (directory_size_race_test.go): 20 nodes
// there cost minutes of CPU on 2 cores, mostly TLS handshakes and gossip.
const dirTestNodes = 20
