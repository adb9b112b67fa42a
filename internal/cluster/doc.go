// Package cluster holds what a wasmesh node knows about the other nodes of
// its mesh: who is a member (SWIM gossip through hashicorp/memberlist,
// encrypted with the cluster secret), what each member announces about itself
// (NodeMeta: node id, QUIC address, identity-sealing key, capabilities, load),
// and where a daemon should run (Schedule, MigrationTarget).
//
// The scheduler is a set of pure functions over Candidates so placement can be
// tested without a network; Membership is the only part that does I/O.
package cluster
