package reliable

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/internal/wire"
	"github.com/cnlink/cnlink/transport"
)

func TestConfigDefaults(t *testing.T) {
	c, err := (*Config)(nil).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Window: 4096, SendBuffer: 256, SendBufferBytes: 1 << 20, RecvBuffer: 1024, MaxMessage: 16384, MaxDatagram: 65536,
		AcceptBacklog: 64, HandshakeTimeout: 5 * time.Second, KeepAlive: time.Second,
		DeadPeerTimeout: 5 * time.Second, CloseTimeout: 5 * time.Second}
	if c.Window != want.Window || c.SendBuffer != want.SendBuffer || c.SendBufferBytes != want.SendBufferBytes || c.RecvBuffer != want.RecvBuffer ||
		c.MaxMessage != want.MaxMessage || c.MaxDatagram != want.MaxDatagram || c.AcceptBacklog != want.AcceptBacklog ||
		c.HandshakeTimeout != want.HandshakeTimeout || c.KeepAlive != want.KeepAlive ||
		c.DeadPeerTimeout != want.DeadPeerTimeout || c.CloseTimeout != want.CloseTimeout {
		t.Fatalf("defaults %+v", c)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Window: -1}, "Window"},
		{Config{Window: 1 << 21}, "Window"},
		{Config{MaxMessage: MaxMessageLimit + 1}, "MaxMessage"},
		{Config{MaxMessage: 16384, MaxDatagram: 1000}, "MaxDatagram"},
		{Config{MaxMessage: 8, MaxDatagram: 64}, "MinDatagram"},
		{Config{RecvBuffer: -5}, "RecvBuffer"},
		{Config{KeepAlive: -time.Second}, "durations"},
	} {
		_, err := tc.cfg.withDefaults()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.want)
		}
		if _, err := NewEndpoint(nil, &tc.cfg); !errors.Is(err, ErrInvalidConfig) || strings.Count(err.Error(), "cnlink") != 1 {
			t.Errorf("NewEndpoint(%+v): %v, want ErrInvalidConfig, saying cnlink once", tc.cfg, err)
		}
	}
}

// The largest message needs no other field: MaxDatagram's default grows
// to hold one frame of it, and a session with such a peer carries it.
func TestConfigMaxMessageLimit(t *testing.T) {
	c, err := (&Config{MaxMessage: MaxMessageLimit}).withDefaults()
	if err != nil {
		t.Fatalf("MaxMessage = MaxMessageLimit with the default MaxDatagram: %v", err)
	}
	if c.MaxDatagram < transport.FrameLen(wire.HeaderLen+MaxMessageLimit) {
		t.Fatalf("MaxDatagram %d cannot hold a %d-byte message", c.MaxDatagram, MaxMessageLimit)
	}
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, &Config{MaxMessage: MaxMessageLimit}, nil)
		if p.sa.MaxMessage() != MaxMessageLimit {
			t.Fatalf("session MaxMessage %d, want %d", p.sa.MaxMessage(), MaxMessageLimit)
		}
		big := make([]byte, MaxMessageLimit)
		big[0], big[len(big)-1] = 1, 2
		if err := p.sa.Send(context.Background(), big); err != nil {
			t.Fatal(err)
		}
		if m := <-p.sb.Recv(); len(m) != MaxMessageLimit || m[0] != 1 || m[len(m)-1] != 2 {
			t.Fatalf("got %d bytes", len(m))
		}
		var se *MessageSizeError
		if err := p.sa.Send(context.Background(), make([]byte, MaxMessageLimit+1)); !errors.As(err, &se) || se.Max != MaxMessageLimit {
			t.Fatalf("oversized Send: %v", err)
		}
	})
}
