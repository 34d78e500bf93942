package localdns

import (
	"fmt"
	"net"
	"strconv"
)

// LoopbackAddrs are the addresses the kit's loopback tests and the demo bind, as pods:
// 127.0.0.2 to 127.0.0.52.
func LoopbackAddrs() []string {
	var ips []string
	for i := 2; i <= 52; i++ {
		ips = append(ips, "127.0.0."+strconv.Itoa(i))
	}
	return ips
}

// CheckLoopback binds a port on each of ips and says how to fix the host when one cannot
// be bound. Linux routes all of 127.0.0.0/8 to the loopback interface; macOS only has
// 127.0.0.1 on lo0 until more are aliased, and would otherwise fail later with a bare
// "can't assign requested address".
func CheckLoopback(ips ...string) error {
	for _, ip := range ips {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return fmt.Errorf("cannot listen on %s (%w): the loopback tests and the demo need 127.0.0.2 to 127.0.0.52 "+
				"as local addresses. Linux has them; on macOS alias them to lo0 once per boot: "+
				"for i in $(seq 2 52); do sudo ifconfig lo0 alias 127.0.0.$i up; done", ip, err)
		}
		l.Close()
	}
	return nil
}
