// Package poddial opens TCP connections to a port of a pod through the API server's
// port-forward subresource and hands them out as net.Conns.
//
// client-go's PortForwarder listens on a local port and copies bytes; it reports a failed
// connection inside the pod ("connection refused") only to its logger and then tears the
// whole forward down. A diagnosis needs that error as a value, per connection, and needs
// many connections to one pod to survive one refusal. So this package speaks the
// port-forward protocol directly (an error stream and a data stream per connection, on one
// upgraded connection per pod) and returns the pod-side error from Read.
package poddial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
)

// Dialer dials pod ports through the API server. It is safe for concurrent use; Close
// ends every upgraded connection it made.
type Dialer struct {
	cfg  *rest.Config
	core rest.Interface // CoreV1().RESTClient(): builds the portforward URLs

	mu     sync.Mutex
	conns  map[string]httpstream.Connection // "namespace/pod"
	nextID int
}

// New returns a Dialer using cfg for authentication and core to build URLs.
func New(cfg *rest.Config, core rest.Interface) *Dialer {
	return &Dialer{cfg: cfg, core: core, conns: map[string]httpstream.Connection{}}
}

// Dial opens a TCP connection to port inside pod. A connection the pod refuses still
// returns a net.Conn: the port-forward protocol reports the refusal only after the data
// stream opened, so the first Read returns it ("... connection refused").
func (d *Dialer) Dial(ctx context.Context, namespace, pod string, port int) (net.Conn, error) {
	conn, err := d.podConn(ctx, namespace, pod)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.nextID++
	id := d.nextID
	d.mu.Unlock()

	h := http.Header{}
	h.Set(corev1.StreamType, corev1.StreamTypeError)
	h.Set(corev1.PortHeader, strconv.Itoa(port))
	h.Set(corev1.PortForwardRequestIDHeader, strconv.Itoa(id))
	errStream, err := conn.CreateStream(h)
	if err != nil {
		d.drop(namespace, pod, conn)
		return nil, fmt.Errorf("port-forward %s/%s: error stream: %w", namespace, pod, err)
	}
	errStream.Close() // nothing is written on it; the pod side writes its error and closes

	h.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(h)
	if err != nil {
		conn.RemoveStreams(errStream)
		d.drop(namespace, pod, conn)
		return nil, fmt.Errorf("port-forward %s/%s: data stream: %w", namespace, pod, err)
	}
	sc := &streamConn{conn: conn, data: data, errStream: errStream, done: make(chan struct{}),
		addr: addr(fmt.Sprintf("%s/%s:%d", namespace, pod, port))}
	go func() {
		msg, err := io.ReadAll(errStream)
		switch {
		case len(msg) > 0:
			sc.remote = fmt.Errorf("port-forward to %s/%s port %d: %s", namespace, pod, port, msg)
		case err != nil:
			sc.remote = fmt.Errorf("port-forward to %s/%s port %d: error stream: %w", namespace, pod, port, err)
		}
		close(sc.done)
	}()
	return sc, nil
}

// podConn returns the cached upgraded connection to pod, dialling one if needed. Like
// kubectl, it tries the WebSocket tunnel first and falls back to SPDY.
func (d *Dialer) podConn(ctx context.Context, namespace, pod string) (httpstream.Connection, error) {
	key := namespace + "/" + pod
	d.mu.Lock()
	c, ok := d.conns[key]
	d.mu.Unlock()
	if ok {
		select {
		case <-c.CloseChan():
			d.drop(namespace, pod, c)
		default:
			return c, nil
		}
	}
	u := d.core.Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("portforward").URL()
	rt, upgrader, err := spdy.RoundTripperFor(d.cfg)
	if err != nil {
		return nil, fmt.Errorf("port-forward %s: %w", key, err)
	}
	spdyDialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	wsDialer, err := portforward.NewSPDYOverWebsocketDialer(u, d.cfg)
	if err != nil {
		return nil, fmt.Errorf("port-forward %s: %w", key, err)
	}
	dialer := portforward.NewFallbackDialer(wsDialer, spdyDialer, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})

	// httpstream.Dialer takes no context: dial in the background and give up on ctx.
	type result struct {
		c   httpstream.Connection
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("port-forward %s: %w", key, r.err)
		}
		d.mu.Lock()
		defer d.mu.Unlock()
		if old, ok := d.conns[key]; ok { // another caller won the race: use theirs
			r.c.Close()
			return old, nil
		}
		d.conns[key] = r.c
		return r.c, nil
	case <-ctx.Done():
		go func() {
			if r := <-ch; r.c != nil {
				r.c.Close()
			}
		}()
		return nil, fmt.Errorf("port-forward %s: %w", key, ctx.Err())
	}
}

func (d *Dialer) drop(namespace, pod string, c httpstream.Connection) {
	key := namespace + "/" + pod
	d.mu.Lock()
	if d.conns[key] == c {
		delete(d.conns, key)
	}
	d.mu.Unlock()
	c.Close()
}

// Close ends every port-forward connection.
func (d *Dialer) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for k, c := range d.conns {
		errs = append(errs, c.Close())
		delete(d.conns, k)
	}
	return errors.Join(errs...)
}

// streamConn is one forwarded TCP connection.
type streamConn struct {
	conn      httpstream.Connection
	data      httpstream.Stream
	errStream httpstream.Stream
	addr      addr

	done   chan struct{} // closed once the error stream ended; remote is then final
	remote error         // what the pod side reported, e.g. connection refused

	closeOnce sync.Once
}

// remoteErrWait bounds how long a failed Read waits for the pod side's explanation,
// which travels on the other stream and may arrive just after the data stream ended.
const remoteErrWait = 2 * time.Second

func (s *streamConn) Read(p []byte) (int, error) {
	n, err := s.data.Read(p)
	if err != nil {
		select {
		case <-s.done:
			if s.remote != nil {
				return n, s.remote
			}
		case <-time.After(remoteErrWait):
		}
	}
	return n, err
}

func (s *streamConn) Write(p []byte) (int, error) { return s.data.Write(p) }

func (s *streamConn) Close() error {
	s.closeOnce.Do(func() {
		s.data.Reset() // drop unsent data so the pod side ends the error stream too
		s.conn.RemoveStreams(s.data, s.errStream)
	})
	return nil
}

func (s *streamConn) LocalAddr() net.Addr  { return s.addr }
func (s *streamConn) RemoteAddr() net.Addr { return s.addr }

// Deadlines are not supported by the streams. gRPC bounds its handshakes and calls with
// contexts and closes the connection when they expire, which unblocks Read.
func (s *streamConn) SetDeadline(time.Time) error      { return nil }
func (s *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (s *streamConn) SetWriteDeadline(time.Time) error { return nil }

type addr string

func (addr) Network() string  { return "portforward" }
func (a addr) String() string { return string(a) }
