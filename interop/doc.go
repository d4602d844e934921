// Package interop checks that docs/PROTOCOL.md is enough to write a
// compatible peer: cpeer (interop/cpeer/cpeer.c) is a cnlink peer written
// in C from that document alone, and the tests in this package run it
// against the Go implementation (reliable, transport) over real netlink
// connector sockets: streams both ways under 10% loss, request/reply both
// ways, graceful close and abort each way, a peer that restarts on its
// port, corrupted frames and frames with a wrong epoch.
//
// The tests build cpeer with cc into a temporary directory; without cc in
// PATH every test skips, and without CAP_NET_ADMIN (root) the tests that
// open sockets skip. Run them with `make interop`.
package interop
