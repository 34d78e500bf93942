package localdns

import (
	"fmt"
	"net"
	"strconv"
)

// FreePortOn returns a TCP port free on every one of ips: the servers behind one name
// share a port, as pods behind a headless Service do, since DNS names only addresses.
func FreePortOn(ips ...string) (int, error) {
	if len(ips) == 0 {
		return 0, fmt.Errorf("localdns: FreePortOn needs at least one address")
	}
	for range 20 {
		l, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		ok := true
		for _, ip := range ips[1:] {
			l2, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				ok = false
				break
			}
			l2.Close()
		}
		if ok {
			return port, nil
		}
	}
	return 0, fmt.Errorf("localdns: no port free on all of %v", ips)
}
