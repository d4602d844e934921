// Package wire encodes and decodes cnlink's session protocol: the 12-byte
// cnlink header and the bodies that follow it inside a cn_msg payload.
// docs/PROTOCOL.md is the byte-exact description; this package is its
// reference implementation. It does no I/O.
//
// Every cnlink frame is one netlink message:
//
//	nlmsghdr (16) | cn_msg (20) | cnlink header (12) | body
//
// and honours the connector's rule: a frame that answers another carries
// the answered frame's seq and its ack + 1.
package wire
