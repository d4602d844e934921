package proc

import (
	"github.com/cnlink/cnlink/transport"
)

// The proc connector's address: cb_id {CN_IDX_PROC, CN_VAL_PROC}, whose
// events the kernel multicasts to group CN_IDX_PROC.
var procID = transport.CbID{Idx: 1, Val: 1}

// Group is the multicast group of the proc connector (CN_IDX_PROC).
const Group = 1

// enum proc_cn_mcast_op.
const (
	opListen = 1 // PROC_CN_MCAST_LISTEN
	opIgnore = 2 // PROC_CN_MCAST_IGNORE
)

// appendRequest appends a subscription request to dst: a connector message
// to cb_id 1:1 whose payload is either the 4-byte enum proc_cn_mcast_op,
// which every kernel understands and which selects every event type, or
// (filtered) the 8-byte struct proc_input {op, event_type} of Linux 6.6+.
// A kernel older than 6.6 silently ignores a payload of any length other
// than 4. seq and ack follow the connector's rule: a locally increasing
// seq and a random ack, answered with ack+1 (cn_proc overwrites the seq).
func appendRequest(dst []byte, port, seq, ack uint32, op uint32, filtered bool, mask Mask) []byte {
	var p [8]byte
	ne.PutUint32(p[0:], op)
	payload := p[:4]
	if filtered {
		ne.PutUint32(p[4:], uint32(mask))
		payload = p[:8]
	}
	f := transport.Frame{
		NlType:  transport.NlmsgDone,
		NlSeq:   seq,
		NlPID:   port,
		ID:      procID,
		Seq:     seq,
		Ack:     ack,
		Payload: payload,
	}
	// An 8-byte payload is far below MaxPayload: AppendFrame cannot fail.
	b, _ := transport.AppendFrame(dst, &f)
	return b
}
