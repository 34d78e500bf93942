// Package identity says which process served a call: the pod name, IP, node and namespace
// from the Kubernetes downward API, and the service version used to see canary splits.
package identity

import (
	"os"

	pb "github.com/grpc-k8s-kit/grpc-k8s-kit/proto/helloworld"
)

// Identity of a serving process.
type Identity struct {
	Pod       string
	PodIP     string
	Node      string
	Namespace string
	Version   string
}

// FromEnv reads POD_NAME, POD_IP, NODE_NAME, POD_NAMESPACE and VERSION (set by the
// downward API in the kit's manifests). Outside Kubernetes the pod name falls back to the
// hostname and the IP to fallbackIP (the address the server listens on).
func FromEnv(getenv func(string) string, fallbackIP string) Identity {
	id := Identity{
		Pod:       getenv("POD_NAME"),
		PodIP:     getenv("POD_IP"),
		Node:      getenv("NODE_NAME"),
		Namespace: getenv("POD_NAMESPACE"),
		Version:   getenv("VERSION"),
	}
	if id.Pod == "" {
		if h, err := os.Hostname(); err == nil {
			id.Pod = h
		}
	}
	if id.PodIP == "" {
		id.PodIP = fallbackIP
	}
	if id.Version == "" {
		id.Version = "v1"
	}
	return id
}

// Backend is the identity as it travels in replies, for the named gRPC service.
func (id Identity) Backend(service string) *pb.Backend {
	return &pb.Backend{
		Pod:       id.Pod,
		PodIp:     id.PodIP,
		Node:      id.Node,
		Namespace: id.Namespace,
		Version:   id.Version,
		Service:   service,
	}
}
