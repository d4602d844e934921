package discover_test

import (
	"errors"
	"fmt"
	"os"

	"github.com/cnlink/cnlink/discover"
	"github.com/cnlink/cnlink/transport"
)

// A server opens the port of its service name; a client finds it by the
// same name and checks who holds it before dialing.
func Example() {
	// Server: the port comes from the name. A taken port fails with a
	// *PortInUseError that names the process holding it.
	name := fmt.Sprintf("example-service-%d", os.Getpid()) // e.g. "billing"
	srv, err := discover.OpenName(name, transport.Config{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer srv.Close()

	// Client: the same name gives the same port; Resolve also checks
	// that a process with the expected command name holds it (a test
	// binary here; a real client names its server's command).
	me, _ := discover.ByPort(srv.LocalPort())
	owner, _ := me.Owner()
	port, err := discover.Resolve(name, discover.Expect{Comm: owner.Comm})
	fmt.Println(err, port == srv.LocalPort(), port == discover.PortForName(name))

	_, err = discover.Resolve(name, discover.Expect{Comm: "someone-else"})
	fmt.Println(errors.Is(err, discover.ErrUnexpectedOwner))
	// Then: ep.Dial(ctx, port, channel) with reliable.Endpoint.

	// Output:
	// <nil> true true
	// true
}

func ExamplePortForName() {
	fmt.Println(discover.PortForName("cnlink-echo"))
	// Output: 1631963010
}
