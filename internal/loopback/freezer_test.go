package loopback

import (
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// freezer is a TCP proxy in front of one server, and on freeze what a client sees of a
// pod whose node froze (a stopped VM, a partition that drops packets): it forwards
// nothing any more, in either direction, on the connections it has and on new ones, and
// closes none of them, so no FIN and no RST reaches either side. A frozen node's kernel
// may still acknowledge what arrives; the proxy's kernel does, and the proxy keeps
// reading what each side sends and drops it, which the client cannot tell from a kernel
// buffering it for a process that never reads, and which tells the test when the client
// closed its side (clientClosed).
type freezer struct {
	ln      net.Listener
	backend string

	mu       sync.Mutex
	frozenAt time.Time // zero until freeze
	conns    []net.Conn
	// closedAt: when a client closed a connection that was open at the freeze.
	closedAt []time.Time
}

// startFreezer listens on addr and forwards every connection to backend until frozen.
func startFreezer(t *testing.T, addr, backend string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, backend: backend}
	go f.accept()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.conns {
			c.Close()
		}
	})
	return f
}

func (f *freezer) Addr() string { return f.ln.Addr().String() }

// freeze stops all forwarding and returns when it did.
func (f *freezer) freeze() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.frozenAt = time.Now()
	return f.frozenAt
}

func (f *freezer) frozen() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return !f.frozenAt.IsZero()
}

// clientClosed is when a client first closed a connection that was open at the freeze.
func (f *freezer) clientClosed() (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.closedAt) == 0 {
		return time.Time{}, false
	}
	return f.closedAt[0], true
}

func (f *freezer) track(c net.Conn) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.conns = append(f.conns, c)
}

func (f *freezer) accept() {
	for {
		client, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.track(client)
		if f.frozen() {
			// A new connection to a frozen node: the handshake completes (a kernel
			// answers it) and nothing else ever comes back.
			go pump(client, nil, f, false)
			continue
		}
		server, err := net.Dial("tcp", f.backend)
		if err != nil {
			client.Close()
			continue
		}
		f.track(server)
		go pump(client, server, f, true)
		go pump(server, client, f, false)
	}
}

// pump copies src to dst until src ends, or reads and drops once the freezer is frozen
// (dst nil: always). When src ends before the freeze, both sides close, as a proxy's
// would; after it, nothing closes, and the end of a client's side is recorded.
func pump(src, dst net.Conn, f *freezer, fromClient bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && dst != nil && !f.frozen() {
			if _, werr := dst.Write(buf[:n]); werr != nil && !f.frozen() {
				src.Close()
				return
			}
		}
		if err == nil {
			continue
		}
		if !f.frozen() {
			src.Close()
			if dst != nil {
				dst.Close()
			}
			return
		}
		if fromClient && (errors.Is(err, io.EOF) || !errors.Is(err, net.ErrClosed)) {
			f.mu.Lock()
			f.closedAt = append(f.closedAt, time.Now())
			f.mu.Unlock()
		}
		return
	}
}
