package reliable

import (
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	c, err := (*Config)(nil).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	want := Config{Window: 4096, SendBuffer: 4096, RecvBuffer: 1024, MaxMessage: 16384, MaxDatagram: 65536,
		AcceptBacklog: 64, HandshakeTimeout: 5 * time.Second, KeepAlive: time.Second,
		DeadPeerTimeout: 5 * time.Second, CloseTimeout: 5 * time.Second}
	if c.Window != want.Window || c.SendBuffer != want.SendBuffer || c.RecvBuffer != want.RecvBuffer ||
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
		{Config{RecvBuffer: -5}, "RecvBuffer"},
		{Config{KeepAlive: -time.Second}, "durations"},
	} {
		_, err := tc.cfg.withDefaults()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one naming %s", tc.cfg, err, tc.want)
		}
		if _, err := NewEndpoint(nil, &tc.cfg); err == nil {
			t.Errorf("NewEndpoint accepted %+v", tc.cfg)
		}
	}
}
