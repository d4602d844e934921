package transport_test

import (
	"fmt"

	"github.com/cnlink/cnlink/transport"
)

// Two frames batched into one datagram, then walked with a Scanner
// without copying: each Payload aliases the datagram.
func ExampleScanner() {
	id := transport.CbID{Idx: 11, Val: 1}
	var dgram []byte
	for i, msg := range []string{"hello", "connector"} {
		var err error
		dgram, err = transport.AppendFrame(dgram, &transport.Frame{
			NlType:  transport.NlmsgDone,
			NlSeq:   uint32(i + 1), // the kernel copies cn_msg.seq here
			ID:      id,
			Seq:     uint32(i + 1),
			Ack:     100,
			Payload: []byte(msg),
		})
		if err != nil {
			fmt.Println(err)
			return
		}
	}
	// 36 header bytes per frame, each padded to 4 bytes: 44 + 48.
	fmt.Println("datagram bytes:", len(dgram))

	s := transport.NewScanner(dgram)
	for s.Next() {
		f := s.Frame()
		fmt.Printf("id %v seq %d ack %d: %q (next frame at %d)\n", f.ID, f.Seq, f.Ack, f.Payload, s.Offset())
	}
	if err := s.Err(); err != nil {
		fmt.Println(err)
	}

	// A datagram cut short yields what was whole, then the error.
	s.Reset(dgram[:60])
	for s.Next() {
		fmt.Printf("cut: %q\n", s.Frame().Payload)
	}
	fmt.Println(s.Err())
	// Output:
	// datagram bytes: 92
	// id 11:1 seq 1 ack 100: "hello" (next frame at 44)
	// id 11:1 seq 2 ack 100: "connector" (next frame at 92)
	// cut: "hello"
	// cnlink/transport: decode at offset 44: nlmsg_len out of range
}
