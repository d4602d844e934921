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
// the answered frame's seq and its ack + 1. Append encodes a frame;
// Reader decodes a datagram's frames: one path each way.
//
// The package is internal: its only users are this module's packages
// (reliable, and the torture, hostile and metrics tests that forge or
// count frames). A program that speaks cnlink uses reliable; a peer in
// another language follows docs/PROTOCOL.md, which is normative and
// checked against this package byte for byte. Exporting the encoder would
// freeze some thirty names for no user.
package wire
