package window_test

import (
	"time"

	"github.com/cnlink/cnlink/window"
)

// The API the engine (reliable/) is written against. If a signature here
// stops compiling, the engine breaks too: change both or neither.
var (
	_ func(window.Seq) bool                                            = window.Seq(0).Less
	_ func(window.Seq) bool                                            = window.Seq(0).LessEq
	_ func(int) window.Seq                                             = window.Seq(0).Add
	_ func(window.Seq) int                                             = window.Seq(0).Sub
	_ func() window.Seq                                                = window.RandomSeq
	_                                                                  = window.Range{Start: 0, End: 0}
	_                                                                  = window.Ack{Cum: 0, Limit: 0, Ranges: []window.Range(nil), DupValid: false, Dup: 0}
	_                                                                  = window.SenderConfig{Window: 0, PacketThreshold: 0}
	_ func(window.Seq, window.SenderConfig) *window.Sender[[]byte]     = window.NewSender[[]byte]
	_                                                                  = window.AckResult{Acked: 0, RTTValid: false, RTT: 0, NewlyLost: 0, Spurious: 0, LimitMoved: false}
	_                                                                  = window.SenderStats{Pushed: 0, Acked: 0, Lost: 0, Retransmitted: 0, Spurious: 0}
	_                                                                  = window.ReceiverConfig{Window: 0, MaxRanges: 0}
	_ func(window.Seq, window.ReceiverConfig) *window.Receiver[[]byte] = window.NewReceiver[[]byte]
	_                                                                  = []window.Verdict{window.Accepted, window.Duplicate, window.OutOfWindow}
)

func apiSender(s *window.Sender[[]byte]) {
	var (
		_ func() window.Seq                                                          = s.Next
		_ func() int                                                                 = s.InFlight
		_ func() bool                                                                = s.CanSend
		_ func(time.Duration, []byte) window.Seq                                     = s.Push
		_ func(time.Duration, window.Ack, func(window.Seq, []byte)) window.AckResult = s.OnAck
		_ func(time.Duration)                                                        = s.SetSRTT
		_ func(time.Duration) int                                                    = s.DetectLoss
		_ func() (time.Duration, bool)                                               = s.LossDeadline
		_ func() int                                                                 = s.MarkAllLost
		_ func(time.Duration) (window.Seq, []byte, bool)                             = s.PopLost
		_ func() bool                                                                = s.HasLost
		_ func() (time.Duration, bool)                                               = s.OldestSentAt
		_ func(func(window.Seq, []byte))                                             = s.Drain
		_ func() window.SenderStats                                                  = s.Stats
	)
}

func apiReceiver(r *window.Receiver[[]byte]) {
	var (
		_ func(window.Seq, []byte) window.Verdict = r.Push
		_ func() ([]byte, bool)                   = r.Pop
		_ func() window.Seq                       = r.Cum
		_ func() int                              = r.Buffered
		_ func(int) window.Ack                    = r.Ack
		_ func(func([]byte))                      = r.Drain
	)
}

var _, _ = apiSender, apiReceiver
