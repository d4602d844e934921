package torture

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cnlink/cnlink/reliable"
)

// The readers: each side reads the peer's stream with one data reader
// (its kind drawn: fast, batch, slow, stalled, vanishing, stop-at-Done)
// and one request handler, which answers with Request.Reply. Everything
// they take is checked against the peer's plan as it arrives.

// rxState is what one side's application has taken of the peer's stream.
// The data reader owns the data half, the request handler the request
// half, until both have stopped and the run drains what is left.
type rxState struct {
	st      stream
	dataPos []int // stream positions of the peer's plain messages, in order
	reqPos  []int // and of its requests
	data    int   // plain messages taken in order so far (verified)
	reqs    int   // requests taken in order so far (verified)
	dataBad bool  // an out-of-order or corrupt message was reported: stop checking
	reqBad  bool
	// Items the application took, right or wrong (for the counters): one
	// count per goroutine, and their sum for the watchdog.
	tookData, tookReqs int
	taken              atomic.Int64
}

// expect prepares rx for the stream peer sends.
func (rx *rxState) expect(peer *sidePlan) {
	rx.st = peer.out
	for i, req := range peer.isReq {
		if req {
			rx.reqPos = append(rx.reqPos, i)
		} else {
			rx.dataPos = append(rx.dataPos, i)
		}
	}
}

// takeData checks the next plain message.
func (sd *sideRun) takeData(m []byte, how string) {
	rx := &sd.rx
	rx.tookData++
	rx.taken.Add(1)
	sd.sess.progress.Add(1)
	if rx.dataBad {
		return
	}
	if rx.data >= len(rx.dataPos) {
		rx.dataBad = true
		sd.run.violate(1, "order/extra", "%v: %s: message beyond the %d the peer planned (%d bytes): duplicate or foreign",
			sd, how, len(rx.dataPos), len(m))
		return
	}
	if want := rx.dataPos[rx.data]; !rx.st.matches(m, want) {
		rx.dataBad = true
		sd.run.violate(1, "order/data", "%v: %s: expected message %d (%d bytes, the %d-th plain one), got %s; %s",
			sd, how, want, rx.st.size(want), rx.data, rx.st.identify(m, rx.dataPos, rx.data), sd.localState())
		return
	}
	rx.data++
}

// takeRequest checks the next request and reports its stream position
// (-1 if it is not the expected one).
func (sd *sideRun) takeRequest(q *reliable.Request, how string) int {
	rx := &sd.rx
	rx.tookReqs++
	rx.taken.Add(1)
	sd.sess.progress.Add(1)
	if rx.reqBad {
		return -1
	}
	if rx.reqs >= len(rx.reqPos) {
		rx.reqBad = true
		sd.run.violate(6, "request/extra", "%v: %s: request beyond the %d the peer planned: a handler ran twice?", sd, how, len(rx.reqPos))
		return -1
	}
	want := rx.reqPos[rx.reqs]
	if !rx.st.matches(q.Data, want) {
		rx.reqBad = true
		inv, tag := 1, "order/request"
		if rx.reqs > 0 && rx.st.matches(q.Data, rx.reqPos[rx.reqs-1]) {
			inv, tag = 6, "request/twice"
		}
		sd.run.violate(inv, tag, "%v: %s: expected request %d, got %s; %s", sd, how, want, rx.st.identify(q.Data, rx.reqPos, rx.reqs), sd.localState())
		return -1
	}
	rx.reqs++
	return want
}

// vanished is closed when the side's reader stops for good.
func (sd *sideRun) vanishNow() { sd.vanishOnce.Do(func() { close(sd.vanished) }) }

func (sd *sideRun) runReader() {
	defer sd.run.wg.Done()
	defer sd.readerEnded()
	rp := sd.plan.reader
	s := sd.s
	read := 0 // plain messages read, for the afterRead actions
	after := func() bool {
		read++
		sd.readProgress(read)
		switch rp.kind {
		case readSlow:
			time.Sleep(rp.slow[0] + time.Duration(sd.rand.Int64N(int64(rp.slow[1]-rp.slow[0])+1)))
		case readStalled:
			if d, ok := rp.stalls[read]; ok {
				time.Sleep(d)
			}
		case readVanish:
			if read >= rp.vanishAfter {
				return false
			}
		}
		return true
	}
	sd.readProgress(0) // actions due before reading anything
	if rp.kind == readVanish && rp.vanishAfter == 0 {
		sd.vanishNow()
		return
	}
	if rp.kind == readBatch {
		buf := make([][]byte, rp.batch)
		for {
			n, err := s.RecvBatch(sd.run.ctx, buf)
			if err != nil {
				sd.run.checkErr(sd, "RecvBatch", err)
				sd.batchEnded = sd.run.ctx.Err() == nil
				return
			}
			for _, m := range buf[:n] {
				sd.takeData(m, "RecvBatch")
				s.Recycle(m)
				after()
			}
			clear(buf[:n])
		}
	}
	for {
		if rp.kind == readStopAtDone {
			select {
			case <-s.Done():
				return // stop the instant it ends; the run drains the rest later
			default:
			}
		}
		select {
		case m := <-s.Recv():
			sd.takeData(m, "Recv")
			if !after() {
				sd.vanishNow()
				return
			}
		case <-s.Done():
			// Messages that arrived before the end stay readable.
			for {
				select {
				case m := <-s.Recv():
					sd.takeData(m, "Recv after Done")
					if !after() {
						sd.vanishNow()
						return
					}
					continue
				default:
				}
				return
			}
		case <-sd.run.ctx.Done():
			return
		}
	}
}

// runRequests answers the peer's requests until the session is over or
// the reader vanished.
func (sd *sideRun) runRequests() {
	defer sd.run.wg.Done()
	s := sd.s
	reply := func(q *reliable.Request, how string) {
		pos := sd.takeRequest(q, how)
		if pos < 0 {
			return
		}
		// The peer's replies stream: reply to request pos is its message pos.
		err := q.Reply(sd.run.ctx, sd.rx.st.replies().appendMsg(nil, pos))
		sd.run.checkErr(sd, "Reply", err)
	}
	for {
		if sd.plan.reader.kind == readStopAtDone {
			select {
			case <-s.Done():
				return
			default:
			}
		}
		select {
		case q := <-s.Requests():
			reply(q, "Requests")
		case <-s.Done():
			for {
				select {
				case q := <-s.Requests():
					reply(q, "Requests after Done") // Reply must fail cleanly
					continue
				default:
				}
				return
			}
		case <-sd.vanished:
			return
		case <-sd.run.ctx.Done():
			return
		}
	}
}

// drain takes, after the run, what is still in the side's channels: the
// application could still read it, so it must continue the stream.
func (sd *sideRun) drain() {
	for {
		select {
		case m := <-sd.s.Recv():
			if sd.batchEnded {
				sd.run.violate(1, "recvbatch/left-behind", "%v: RecvBatch returned the session's end while messages were still in Recv", sd)
				sd.batchEnded = false
			}
			sd.takeData(m, "Recv after the run")
		case q := <-sd.s.Requests():
			sd.takeRequest(q, "Requests after the run")
		default:
			return
		}
	}
}

// readerEnded fires the afterRead actions the reader never reached.
func (sd *sideRun) readerEnded() { sd.readProgress(int(^uint(0) >> 1)) }

// readProgress fires the afterRead actions due after n plain messages,
// each from its own goroutine so that the reader goes on (unless it
// vanishes).
func (sd *sideRun) readProgress(n int) {
	for i, a := range sd.plan.actions {
		if a.when == afterRead && !sd.readFired[i] && a.n <= n {
			sd.readFired[i] = true
			sd.run.wg.Add(1)
			go func() {
				defer sd.run.wg.Done()
				sleepCtx(sd.run.ctx, a.at)
				sd.act(a)
			}()
		}
	}
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// localState says what this side's application had done when a message
// went wrong: an abandoned side may lose messages, never reorder them.
func (sd *sideRun) localState() string {
	sd.mu.Lock()
	defer sd.mu.Unlock()
	return fmt.Sprintf("this side: closed=%v aborted=%v endpoint-closed=%v abandoned=%v", sd.closed, sd.aborted, sd.epClosed, sd.abandoned)
}
