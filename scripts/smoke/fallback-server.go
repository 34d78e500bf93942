//go:build ignore

// Command smoke-server stands in for services/hello in make smoke while that service does
// not exist yet: HTTP on :8080 with /healthz and /readyz, nothing else.
package main

import (
	"log"
	"net/http"
)

func main() {
	ok := func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) }
	http.HandleFunc("GET /healthz", ok)
	http.HandleFunc("GET /readyz", ok)
	log.Fatal(http.ListenAndServe(":8080", nil))
}
