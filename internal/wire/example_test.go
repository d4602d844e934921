package wire_test

import (
	"fmt"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
)

// Build a datagram with a DATA frame and an ACK, then decode it.
func Example() {
	ch := transport.CbID{Idx: 0x434e4c4b, Val: 1}
	dgram, _ := wire.Append(nil, &wire.Frame{ID: ch, Seq: 100, Ack: 0xabc, Type: wire.TypeData}, nil, []byte("hello"))
	ack := wire.AppendAck(nil, &wire.Ack{Limit: 1124, Ranges: []wire.Range{{Start: 7, End: 9}}})
	dgram, _ = wire.Append(dgram, &wire.Frame{ID: ch, Seq: 5, Ack: 0x1235, Type: wire.TypeAck, Arg: 5}, ack, nil)

	var r wire.Reader
	r.Reset(dgram)
	for r.Next() {
		f, err := r.Frame()
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("%v seq=%d ack=%#x arg=%d body=%d bytes\n", f.Header.Type, f.Seq, f.Ack, f.Header.Arg, len(f.Body))
	}
	// Output:
	// DATA seq=100 ack=0xabc arg=0 body=5 bytes
	// ACK seq=5 ack=0x1235 arg=5 body=20 bytes
}
