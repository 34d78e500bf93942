package identity

import (
	"os"
	"testing"
)

func TestFromEnv(t *testing.T) {
	env := map[string]string{"POD_NAME": "hello-abc", "POD_IP": "10.244.0.9", "NODE_NAME": "kind-cp", "POD_NAMESPACE": "kit", "VERSION": "v2"}
	id := FromEnv(func(k string) string { return env[k] }, "127.0.0.1")
	if id != (Identity{Pod: "hello-abc", PodIP: "10.244.0.9", Node: "kind-cp", Namespace: "kit", Version: "v2"}) {
		t.Fatalf("got %+v", id)
	}
	b := id.Backend("helloworld.Hello")
	if b.GetPod() != "hello-abc" || b.GetPodIp() != "10.244.0.9" || b.GetService() != "helloworld.Hello" {
		t.Fatalf("backend %v", b)
	}
}

func TestFallbacksOutsideKubernetes(t *testing.T) {
	host, _ := os.Hostname()
	id := FromEnv(func(string) string { return "" }, "127.0.0.7")
	if id.Pod != host || id.PodIP != "127.0.0.7" || id.Version != "v1" {
		t.Fatalf("got %+v, want hostname %q, listen IP and v1", id, host)
	}
}
