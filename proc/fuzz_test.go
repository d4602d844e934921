package proc

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cnlink/cnlink/transport"
)

// FuzzDecode checks that Decode never panics and that what it decodes is
// what the bytes say: a known kind re-encodes (AppendEvent) to the bytes
// it came from, up to the struct's size, and an unknown one keeps them
// all. The committed corpus (testdata/fuzz/FuzzDecode) holds the kernel
// captures' payloads; the seeds below add them too, plus edge lengths.
func FuzzDecode(f *testing.F) {
	names, _ := filepath.Glob("testdata/kernel/*.bin")
	for _, path := range names {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		fs, err := transport.DecodeFrames(nil, b)
		if err != nil {
			f.Fatal(err)
		}
		p := fs[0].Payload
		f.Add(p)
		f.Add(p[:eventHeaderLen])
		f.Add(p[:eventHeaderLen+4])
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrShortEvent) || len(b) >= eventHeaderLen {
				t.Fatalf("Decode(%x): %v", b, err)
			}
			return
		}
		if ev.What != ne.Uint32(b) || ev.CPU != ne.Uint32(b[4:]) || ev.Timestamp != ne.Uint64(b[8:]) {
			t.Fatalf("header misdecoded: %+v from %x", ev, b)
		}
		if ev.Kind == KindUnknown {
			if !bytes.Equal(ev.Raw, b) {
				t.Fatalf("Raw %x, want %x", ev.Raw, b)
			}
			return
		}
		if ev.Raw != nil || ev.Kind == KindLost {
			t.Fatalf("known kind %v with Raw or Lost: %+v", ev.Kind, ev)
		}
		_, need := kindOf(ev.What)
		enc := AppendEvent(nil, &ev)
		n := eventHeaderLen + need
		if !bytes.Equal(enc[:n], b[:n]) {
			t.Fatalf("AppendEvent(Decode(b)) = %x, want prefix %x", enc[:n], b[:n])
		}
		again, err := Decode(enc)
		if err != nil || !reflect.DeepEqual(again, ev) {
			t.Fatalf("round trip: %+v %v, want %+v", again, err, ev)
		}
	})
}

// FuzzHandleDatagram runs arbitrary datagrams from the kernel's port
// through a Monitor's receive path: no panic, no event that is not from
// cb_id 1:1, every message counted once, and memory bounded by the event
// buffer whatever arrives.
func FuzzHandleDatagram(f *testing.F) {
	names, _ := filepath.Glob("testdata/kernel/*.bin")
	var all []byte
	for _, path := range names {
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		all = append(all, b...) // several messages in one datagram
	}
	f.Add(all)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m := newMonitor(Config{Buffer: 4}, nopTransport{})
		sc := transport.NewScanner(b)
		frames := 0
		for sc.Next() {
			frames++
			m.handle(sc.Frame())
		}
		st := m.Stats()
		if got := st.Received + st.Rejected + st.Malformed; got != uint64(frames) {
			t.Fatalf("%d frames, counted %d: %+v", frames, got, st)
		}
		if len(m.events) > cap(m.events) || cap(m.events) != 4 {
			t.Fatalf("event buffer grew: len %d cap %d", len(m.events), cap(m.events))
		}
		for len(m.events) > 0 {
			ev := <-m.events
			if ev.Kind == KindNone {
				t.Fatalf("an ack was delivered: %+v", ev)
			}
		}
	})
}

// nopTransport satisfies transport.Transport for tests that drive a
// Monitor's handlers directly.
type nopTransport struct{}

func (nopTransport) LocalPort() uint32                 { return 1 }
func (nopTransport) Send(transport.Addr, []byte) error { return nil }
func (nopTransport) Receive([]byte) (transport.Packet, error) {
	return transport.Packet{}, transport.ErrClosed
}
func (nopTransport) JoinGroup(uint32) error  { return nil }
func (nopTransport) LeaveGroup(uint32) error { return nil }
func (nopTransport) Close() error            { return nil }
