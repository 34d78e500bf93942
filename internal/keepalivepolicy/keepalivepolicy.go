// Package keepalivepolicy is the one fact the kit's servers and clients share about
// keepalive: how often the servers let a client ping. The servers enforce it
// (serverkit's -keepalive-min-time default); the greeter's help and the error hints
// quote it. A package of its own so that stating it links no server code into a client.
package keepalivepolicy

import "time"

// MinTime is the servers' keepalive enforcement: a client that pings more often is sent
// GOAWAY too_many_pings. 10s is grpc-go's floor for a client's keepalive time, so any
// grpc-go client's keepalive passes; clients that ping to keep long-lived streams alive
// through proxies and NATs (greeter -keepalive) use 10s or more.
const MinTime = 10 * time.Second
