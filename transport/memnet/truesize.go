package memnet

import "github.com/cnlink/cnlink/transport"

// Truesize is what the kernel charges a receive queue for one datagram of
// n bytes (see transport.Truesize, whose kernel model memnet applies).
func Truesize(n int, multicast bool) int { return transport.Truesize(n, multicast) }
