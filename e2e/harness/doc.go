//go:build e2e

// Package harness is what the e2e suite's tests are written with, on the model of the
// Gateway API conformance suite: a Suite value passed to every test (the cluster client,
// the binaries, the tables, the node gate and the churn lock), topologies described as
// data (Topology), and helpers to apply overlays, run loads, wait, sample metrics, record
// figures and pictures, and dump a namespace when a test fails. Timeouts live in
// timeouts.go. It is build-tagged like the suite: nothing but the suite imports it.
package harness
