// Package apicheck holds tests that run the Kubernetes source the kit's cluster runs
// (k8s.io/kubernetes at the version this module pins, the version of the air-gapped node)
// where the kit relies on what that source does and a cluster cannot show it: behaviour
// behind a feature gate that the kit's cluster has on, with the gate off.
//
// It is a package of this module, not of the kit's, because k8s.io/kubernetes can only be
// required with every staging module replaced by its published tag, which this module does
// (see go.mod). `make test` runs it.
package apicheck
