// Package loopback holds the real-network integration tests: several servers on
// 127.0.0.x addresses, a real DNS server naming them, and the greeter's own client code
// resolving dns:/// names through grpc-go's real resolver. Nothing is faked.
package loopback
