package serverkit

import (
	"net"
	"sync"
)

// Why two grpc.Servers during a drain: a draining pod has two kinds of callers with
// opposite needs.
//   - Direct clients (headless Service, client-side round robin) only look up the pods
//     again when a connection closes. They need a GOAWAY at once, or a client whose every
//     known pod is draining has nowhere to send calls until the drain ends.
//   - Proxies may keep routing new calls to the pod until its readiness probe fails and the
//     EndpointSlice change reaches them (seconds). They need the port to keep accepting.
//
// grpc-go's GracefulStop does both at once (GOAWAY and close the listeners), so the server
// owns the TCP listener and hands each accepted connection to the current generation: on
// SIGTERM a fresh grpc.Server takes new connections while the old one sends GOAWAY and
// finishes its calls. See Server.drain.

// handoffListener is the net.Listener a generation's grpc.Server serves: connections come
// from the Server's own accept loop, and closing it (GracefulStop does) stops only that
// generation, not the TCP listener.
type handoffListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newHandoffListener(addr net.Addr) *handoffListener {
	return &handoffListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoffListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoffListener) Addr() net.Addr { return l.addr }

// offer hands c to the generation's server; false when that generation has stopped.
func (l *handoffListener) offer(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}
