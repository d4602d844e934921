package torture

import (
	"fmt"
	"time"

	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
)

// A run's plan: everything it will do, drawn from its seed by
// scenario_test.go.

// runPlan is one drawn run.
type runPlan struct {
	seed      uint64
	netlink   bool
	procs     int // GOMAXPROCS during the run
	eps       []epPlan
	sessions  []*sessPlan
	epClose   int           // endpoint closed mid-run, or -1
	epCloseAt time.Duration // after the sessions are open
	epCrash   bool          // its socket is closed under it instead: peers see ErrPeerGone, not a RST
	linger    bool          // after the end, watch that nothing is sent any more
}

// epPlan is one endpoint: its engine configuration and its path.
type epPlan struct {
	cfg     reliable.Config
	faults  *fault.Config // nil: no injector
	readBuf int           // kernel or memnet receive buffer (SO_RCVBUF), 0: default
}

// sessPlan is one session: side 0 dials from eps[ep[0]], side 1 accepts
// (or dials too, for a simultaneous open) at eps[ep[1]].
type sessPlan struct {
	id      int
	ch      transport.CbID
	ep      [2]int
	simOpen bool
	ending  string // how the session is meant to end, for the log
	side    [2]*sidePlan
}

// sidePlan is what one side of a session does: the stream it sends, how
// it reads the peer's, and the actions that end it.
type sidePlan struct {
	out        stream
	ops        []op
	msgs       int           // stream positions used by ops
	isReq      []bool        // per position: sent with Request
	shortCtx   time.Duration // > 0: Send and SendBatch get deadlines this short and retry
	oversizeAt int           // try one oversized Send before this position, or -1
	reader     readerPlan
	actions    []action
}

// plain is how many of the side's messages are not requests.
func (sp *sidePlan) plain() int {
	n := 0
	for _, req := range sp.isReq {
		if !req {
			n++
		}
	}
	return n
}

type opKind uint8

const (
	opSend opKind = iota
	opBatch
	opRequest
	opFlush
)

// op is one call of the sender: n messages for opBatch, 1 for opSend and
// opRequest, 0 for opFlush.
type op struct {
	kind opKind
	n    int
}

type readerKind uint8

const (
	readFast       readerKind = iota // select on Recv and Done
	readBatch                        // RecvBatch + Recycle
	readSlow                         // a pause after every message
	readStalled                      // long pauses at a few points
	readVanish                       // stops for good after some messages (then an action ends the side)
	readStopAtDone                   // stops the instant Done closes, without draining
)

var readerNames = [...]string{"fast", "batch", "slow", "stalled", "vanish", "stop-at-done"}

func (k readerKind) String() string { return readerNames[k] }

type readerPlan struct {
	kind        readerKind
	batch       int              // readBatch: RecvBatch slice length
	slow        [2]time.Duration // readSlow: pause range per message
	stalls      map[int]time.Duration
	vanishAfter int // readVanish: data messages read before vanishing
}

type actKind uint8

const (
	actClose actKind = iota
	actAbort
)

type trigger uint8

const (
	afterSends    trigger = iota // by the sender, after its last call
	afterOps                     // by the sender, before op n
	atTime                       // from a timer, at after the session opened
	afterRead                    // n data messages read (or the reader ended), then after delay
	afterBothSent                // both sides' senders finished: a simultaneous close
)

// action ends (or tries to end) one side.
type action struct {
	what  actKind
	when  trigger
	n     int
	at    time.Duration // atTime: since the session opened; afterRead: delay
	flush bool          // Flush before a Close
}

func (a action) String() string {
	w := [...]string{"close", "abort"}[a.what]
	if a.flush {
		w = "flush+" + w
	}
	switch a.when {
	case afterSends:
		return w + " after sends"
	case afterOps:
		return fmt.Sprintf("%s before op %d", w, a.n)
	case atTime:
		return fmt.Sprintf("%s at %v", w, a.at)
	case afterRead:
		return fmt.Sprintf("%s %v after reading %d", w, a.at, a.n)
	default:
		return w + " when both sent (simultaneous)"
	}
}

// torture channels: "TORT", one val per session.
const channelIdx = 0x544f5254
