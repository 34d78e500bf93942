package greeter

import (
	"net"
	"testing"
)

// sentTo names the pod behind an address once one pod answered from it, keeps naming it
// for that address's failed calls, and names none once a second pod answered from the same
// address (a proxy in front of both).
func TestSentTo(t *testing.T) {
	var s sentTo
	podA := &net.TCPAddr{IP: net.IPv4(10, 244, 1, 5), Port: 50051}
	proxy := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000}
	steps := []struct {
		addr     net.Addr
		answered string
		want     string
	}{
		{nil, "", ""},                // no connection picked
		{podA, "", ""},               // failed before anything answered from there
		{podA, "hello-a", "hello-a"}, // learned
		{podA, "", "hello-a"},        // a failed call to it
		{proxy, "hello-a", "hello-a"},
		{proxy, "hello-b", ""}, // two pods behind one address
		{proxy, "hello-a", ""},
		{proxy, "", ""},
	}
	for i, st := range steps {
		if got := s.pod(st.addr, st.answered); got != st.want {
			t.Errorf("step %d (%v, %q): %q, want %q", i, st.addr, st.answered, got, st.want)
		}
	}
}
