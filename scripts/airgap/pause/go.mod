// The pod sandbox ("pause") container for the air-gapped node image. Kubernetes' own pause is
// a small C program; this is a static Go equivalent so it builds with nothing but Go.
module grpc-k8s-kit/airgap/pause

go 1.26.0
