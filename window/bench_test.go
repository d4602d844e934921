package window

import (
	"testing"
	"time"
)

// benchMsg is a value-type message record of a realistic size (a slice
// and a word); the blank field only gives it that size.
type benchMsg struct {
	buf []byte
	_   int
}

// BenchmarkSenderPushAck measures the sender's cost per message: Push, then
// the cumulative acknowledgement that releases it. One op is one message.
func BenchmarkSenderPushAck(b *testing.B) {
	for _, bc := range []struct {
		name  string
		batch int // messages per Ack
	}{
		{"ack=each", 1},
		{"ack=per64", 64},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := NewSender[benchMsg](0xFFFFFF00, SenderConfig{Window: 1024})
			released := 0
			release := func(Seq, benchMsg) { released++ }
			msg := benchMsg{buf: make([]byte, 256)}
			now := time.Duration(0)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				now += time.Microsecond
				n := min(bc.batch, b.N-i)
				for range n {
					s.Push(now, msg)
				}
				i += n
				s.OnAck(now, Ack{Cum: s.Next(), Limit: s.Next().Add(1024)}, release)
			}
			if released != b.N {
				b.Fatalf("released %d of %d", released, b.N)
			}
		})
	}
}

// BenchmarkReceiverPushPop measures the receiver's cost per message: Push,
// Pop, and an Ack every 64 messages. "reordered" swaps every pair, so every
// other message waits in the reorder buffer and every Ack carries a range.
func BenchmarkReceiverPushPop(b *testing.B) {
	for _, bc := range []struct {
		name    string
		reorder bool
	}{
		{"inorder", false},
		{"reordered", true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r := NewReceiver[benchMsg](0xFFFFFF00, ReceiverConfig{Window: 1024})
			msg := benchMsg{buf: make([]byte, 256)}
			seq := Seq(0xFFFFFF00)
			popped := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s := seq.Add(i)
				if bc.reorder {
					s = seq.Add(i ^ 1) // 1, 0, 3, 2, ...
				}
				r.Push(s, msg)
				for {
					if _, ok := r.Pop(); !ok {
						break
					}
					popped++
				}
				if i%64 == 0 {
					r.Ack(0)
				}
			}
			if popped < b.N-1 {
				b.Fatalf("popped %d of %d", popped, b.N)
			}
		})
	}
}

// BenchmarkLoopback runs a Sender and a Receiver back to back with one
// message in every 100 lost, acknowledging every 32 arrivals: SACK
// processing, packet-threshold loss detection and retransmission all in the
// steady state. One op is one message delivered.
func BenchmarkLoopback(b *testing.B) {
	s := NewSender[int](0, SenderConfig{Window: 1024})
	r := NewReceiver[int](0, ReceiverConfig{Window: 1024})
	release := func(Seq, int) {}
	now := time.Duration(0)
	delivered, arrivals, sent := 0, 0, 0
	b.ReportAllocs()
	b.ResetTimer()
	for delivered < b.N {
		now += time.Microsecond
		for s.CanSend() && sent < b.N+64 {
			seq := s.Push(now, sent)
			sent++
			if sent%100 != 0 {
				r.Push(seq, sent)
				arrivals++
			}
		}
		for {
			seq, v, ok := s.PopLost(now)
			if !ok {
				break
			}
			r.Push(seq, v)
			arrivals++
		}
		for {
			if _, ok := r.Pop(); !ok {
				break
			}
			delivered++
		}
		if idle := !s.CanSend() || sent == b.N+64; arrivals >= 32 || idle {
			arrivals = 0
			s.OnAck(now, r.Ack(0), release)
			if idle && !s.HasLost() && s.InFlight() > 0 {
				s.MarkAllLost() // the tail: nothing sent later reveals it
			}
		}
	}
	st := s.Stats()
	b.ReportMetric(float64(st.Retransmitted)/float64(b.N), "retx/op")
}
