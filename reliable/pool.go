package reliable

import (
	"math/bits"
	"sync"

	"github.com/cnlink/cnlink/wire"
)

// msgBuf is one queued or in-flight outgoing message. It owns a copy of
// the caller's bytes (Send never keeps the caller's slice) and comes from a
// size-class pool so that the send path does not allocate.
type msgBuf struct {
	b       []byte
	typ     wire.Type // TypeData or TypeReply
	flags   uint16
	replyTo uint32        // Reply: the request's DSN (cn_msg.seq of the Reply)
	ackTo   uint32        // Reply: the request's cn_msg.ack + 1
	reply   chan replyMsg // Request: where the Reply goes
	class   int8          // pool class, -1 = not pooled
}

type replyMsg struct {
	data []byte
	err  error
}

// Size classes 64 B .. 64 KiB, powers of two.
const (
	minClassShift = 6
	numClasses    = 11
)

var msgPools [numClasses]sync.Pool

func classOf(n int) int {
	if n <= 1<<minClassShift {
		return 0
	}
	return bits.Len(uint(n-1)) - minClassShift
}

// getMsg returns a msgBuf holding a copy of p.
func getMsg(p []byte) *msgBuf {
	c := classOf(len(p))
	var m *msgBuf
	if c < numClasses {
		if v := msgPools[c].Get(); v != nil {
			m = v.(*msgBuf)
		} else {
			m = &msgBuf{b: make([]byte, 0, 1<<(c+minClassShift)), class: int8(c)}
		}
	} else {
		m = &msgBuf{b: make([]byte, 0, len(p)), class: -1}
	}
	m.b = append(m.b[:0], p...)
	return m
}

// putMsg recycles m. The caller must hold the only reference.
func putMsg(m *msgBuf) {
	if m.class < 0 {
		return
	}
	m.typ, m.flags, m.replyTo, m.ackTo, m.reply = 0, 0, 0, 0, nil
	m.b = m.b[:0]
	msgPools[m.class].Put(m)
}
