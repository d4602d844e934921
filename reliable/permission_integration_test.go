//go:build linux

package reliable

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
	"golang.org/x/sys/unix"
)

// A process without CAP_NET_ADMIN cannot send to user ports, so it can
// neither dial nor answer the sessions it would accept: NewEndpoint says
// so at once, with ErrPermission (never ErrPeerGone, which a reconnect
// loop would retry for ever) and a message that names the capability
// once and says "cnlink" once. Capabilities are per thread: the test
// drops CAP_NET_ADMIN on one locked thread and calls NewEndpoint there.
func TestIntegrationNewEndpointWithoutNetAdmin(t *testing.T) {
	testenv.RequireNetAdmin(t)
	tr, err := transport.Open(transport.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var orig [2]unix.CapUserData
		if err := unix.Capget(&hdr, &orig[0]); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("capget: %w", err)
			return
		}
		dropped := orig
		dropped[0].Effective &^= 1 << unix.CAP_NET_ADMIN
		if err := unix.Capset(&hdr, &dropped[0]); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("capset: %w", err)
			return
		}
		ep, err := NewEndpoint(tr, nil)
		if ep != nil {
			ep.Close()
		}
		if rerr := unix.Capset(&hdr, &orig[0]); rerr == nil {
			runtime.UnlockOSThread() // else the runtime retires the thread
		}
		errc <- err
	}()
	err = <-errc
	if !errors.Is(err, ErrPermission) || !errors.Is(err, transport.ErrPermission) || !errors.Is(err, unix.EPERM) || errors.Is(err, ErrPeerGone) {
		t.Fatalf("NewEndpoint without CAP_NET_ADMIN: %v, want ErrPermission (and transport.ErrPermission, EPERM), not ErrPeerGone", err)
	}
	msg := err.Error()
	if strings.Count(msg, "CAP_NET_ADMIN") != 1 || strings.Count(msg, "cnlink") != 1 {
		t.Errorf("message names CAP_NET_ADMIN %d times and cnlink %d times, want once each: %s", strings.Count(msg, "CAP_NET_ADMIN"), strings.Count(msg, "cnlink"), msg)
	}
	t.Log(msg)
	// With the capability, the same transport works.
	ep, err := NewEndpoint(tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	ep.Close()
}

// Session errors say "cnlink" once, however deep the cause.
func TestErrorMessagesOnePrefix(t *testing.T) {
	cause := &transport.OpError{Op: "send", Addr: transport.Addr{Port: 7}, Kind: transport.ErrPeerGone, Err: unix.ECONNREFUSED}
	for _, err := range []error{
		&SessionError{Port: 7, Channel: "1:1", Kind: ErrPeerGone, Cause: cause},
		&SessionError{Port: 7, Channel: "1:1", Kind: ErrPermission, Cause: &transport.OpError{Op: "send", Addr: transport.Addr{Port: 7}, Kind: transport.ErrPermission, Err: unix.EPERM}},
		&kindError{kind: ErrTransport, cause: cause},
	} {
		if n := strings.Count(err.Error(), "cnlink"); n != 1 {
			t.Errorf("%q says cnlink %d times", err.Error(), n)
		}
	}
}
