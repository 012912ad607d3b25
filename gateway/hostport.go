package gateway

import (
	"errors"
	"fmt"
	"net"
)

// validHostPorts checks that each address is host:port with both parts and
// listed once; addrs is sorted.
func validHostPorts(addrs []string) error {
	var errs []error
	for i, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("gateway: address %q: want host:port: %v", a, err))
		case host == "" || port == "":
			errs = append(errs, fmt.Errorf("gateway: address %q: want host:port with both parts", a))
		}
		if i > 0 && addrs[i-1] == a {
			errs = append(errs, fmt.Errorf("gateway: address %q listed twice", a))
		}
	}
	return errors.Join(errs...)
}
