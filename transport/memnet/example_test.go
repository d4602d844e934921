package memnet_test

import (
	"errors"
	"fmt"

	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/memnet"
)

// A member with the smallest queue overflows on a multicast burst: its
// next Receive reports the overrun, then it drains what was queued, and
// multicasts flow again once the queue is empty. A unicast into a full
// queue is refused instead of lost.
func Example() {
	n := memnet.New(memnet.Config{})
	pub, _ := n.Open(0)
	sub, _ := n.Open(0)
	defer pub.Close()
	defer sub.Close()
	_ = sub.SetReadBuffer(1) // the kernel minimum: 2304 bytes
	_ = sub.JoinGroup(2)

	msg, _ := transport.AppendFrame(nil, &transport.Frame{NlType: transport.NlmsgDone, Payload: []byte("hello")})
	for range 5 {
		_ = pub.Send(transport.Addr{Group: 2}, msg) // multicast never fails: members lose it
	}
	err := pub.Send(transport.Addr{Port: sub.LocalPort()}, msg)
	fmt.Println("unicast to the congested member: peer busy =", errors.Is(err, transport.ErrPeerBusy))

	buf := make([]byte, 1024)
	for range 3 {
		p, _ := sub.Receive(buf)
		fmt.Printf("overrun=%v from=%d bytes=%d\n", p.Overrun, p.From, len(p.Data))
	}
	_ = pub.Send(transport.Addr{Group: 2}, msg)
	p, _ := sub.Receive(buf)
	fmt.Printf("after draining: group=%d bytes=%d\n", p.Group, len(p.Data))
	fmt.Printf("%+v\n", sub.Stats())
	// Output:
	// unicast to the congested member: peer busy = true
	// overrun=true from=0 bytes=0
	// overrun=false from=1 bytes=44
	// overrun=false from=1 bytes=44
	// after draining: group=2 bytes=44
	// {DatagramsSent:0 BytesSent:0 DatagramsReceived:3 BytesReceived:132 Overruns:1 PeerBusy:0 PeerGone:0 Truncated:0 Drops:3 Queued:0 QueuedBytes:0 ReadBuffer:2304 Congested:false}
}
