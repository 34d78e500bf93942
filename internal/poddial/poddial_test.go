package poddial

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/httpstream"
)

// stream is an httpstream.Stream whose reads come from a reader.
type stream struct {
	r     io.Reader
	reset bool
}

func (s *stream) Read(p []byte) (int, error)  { return s.r.Read(p) }
func (s *stream) Write(p []byte) (int, error) { return len(p), nil }
func (s *stream) Close() error                { return nil }
func (s *stream) Reset() error                { s.reset = true; return nil }
func (s *stream) Headers() http.Header        { return http.Header{} }
func (s *stream) Identifier() uint32          { return 1 }

// conn is an httpstream.Connection recording removed streams.
type conn struct{ removed int }

func (c *conn) CreateStream(http.Header) (httpstream.Stream, error) { return nil, errors.New("unused") }
func (c *conn) Close() error                                        { return nil }
func (c *conn) CloseChan() <-chan bool                              { return nil }
func (c *conn) SetIdleTimeout(time.Duration)                        {}
func (c *conn) RemoveStreams(s ...httpstream.Stream)                { c.removed += len(s) }

func TestReadReturnsThePodSideError(t *testing.T) {
	refused := errors.New("port-forward to ns/pod port 50052: dial tcp4 127.0.0.1:50052: connect: connection refused")
	sc := &streamConn{conn: &conn{}, data: &stream{r: strings.NewReader("")}, errStream: &stream{}, done: make(chan struct{}), remote: refused}
	close(sc.done)
	if _, err := sc.Read(make([]byte, 8)); !errors.Is(err, refused) {
		t.Fatalf("Read: %v, want the pod side's error", err)
	}
}

func TestReadPassesDataAndEOF(t *testing.T) {
	c := &conn{}
	data := &stream{r: strings.NewReader("hi")}
	sc := &streamConn{conn: c, data: data, errStream: &stream{}, done: make(chan struct{})}
	close(sc.done) // the pod side ended without an error
	b, err := io.ReadAll(sc)
	if err != nil || string(b) != "hi" {
		t.Fatalf("ReadAll = %q, %v", b, err)
	}
	sc.Close()
	sc.Close()
	if !data.reset || c.removed != 2 {
		t.Errorf("Close should reset the data stream and remove both streams once: reset %v, removed %d", data.reset, c.removed)
	}
	if sc.LocalAddr().Network() != "portforward" {
		t.Errorf("network %q", sc.LocalAddr().Network())
	}
}
