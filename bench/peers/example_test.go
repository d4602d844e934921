package peers_test

import (
	"fmt"
	"net"

	"github.com/cnlink/cnlink/bench/peers"
)

// Wrapping a UDP socket drops a reproducible 10% of what it sends.
func ExampleLossyConn() {
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()
	lossy := peers.NewLossyConn(conn, 0.10, 42)
	for range 1000 {
		lossy.WriteTo([]byte("ping"), conn.LocalAddr())
	}
	fmt.Println(lossy.Written(), "written,", lossy.Dropped(), "dropped")
	// Output: 1000 written, 125 dropped
}
