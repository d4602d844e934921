//go:build linux

package reliable

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/internal/testenv"
	"github.com/cnlink/cnlink/transport"
)

// The two ways of receiving (pump.go): RecvBatch and RecvIter take from
// the engine's queue, Recv's channel is made by the first call to Recv and
// fed from the same queue. Switching between them at any moment keeps the
// stream in order, exactly once, over real sockets and real concurrency:
// the reader switches at random points, with random batch sizes and
// pauses, while the sender streams, at several GOMAXPROCS.
func TestRecvSwitchingKeepsOrder(t *testing.T) {
	testenv.RequireNetAdmin(t)
	for _, procs := range []int{1, 2, 4} {
		for seed := uint64(1); seed <= 3; seed++ {
			t.Run(fmt.Sprintf("GOMAXPROCS=%d/seed=%d", procs, seed), func(t *testing.T) {
				defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
				big := transport.Config{ReadBuffer: 1 << 20, WriteBuffer: 1 << 20}
				a, b := netlinkPair(t, big, big, &Config{Window: 256, RecvBuffer: 8}, nil)
				sa, sb := dialAccept(t, a, b)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				const n, size = 30_000, 64
				errc := make(chan error, 1)
				go func() {
					for i := range n {
						if err := sa.Send(ctx, msg(i, size)); err != nil {
							errc <- err
							return
						}
					}
					errc <- sa.Close()
				}()
				r := rand.New(rand.NewPCG(seed, uint64(procs)))
				buf := make([][]byte, 64)
				useChan := false
				for i := 0; i < n; {
					switch r.IntN(100) {
					case 0:
						useChan = !useChan // switch now
					case 1:
						// Fall behind, so that the channel fills and the
						// pump waits with the next message in hand.
						time.Sleep(time.Duration(r.IntN(100)) * time.Microsecond)
					}
					if useChan {
						select {
						case m := <-sb.Recv():
							if err := checkMsg(m, i, size); err != nil {
								t.Fatalf("seed=%d Recv: %v", seed, err)
							}
							i++
						case <-ctx.Done():
							t.Fatalf("seed=%d: received %d of %d", seed, i, n)
						}
						continue
					}
					k, err := sb.RecvBatch(ctx, buf[:1+r.IntN(len(buf))])
					if err != nil {
						t.Fatalf("seed=%d: RecvBatch after %d: %v", seed, i, err)
					}
					for _, m := range buf[:k] {
						if err := checkMsg(m, i, size); err != nil {
							t.Fatalf("seed=%d RecvBatch: %v", seed, err)
						}
						i++
					}
				}
				if err := <-errc; err != nil {
					t.Fatalf("sender: %v", err)
				}
				// Nothing more: the end of the stream.
				if k, err := sb.RecvBatch(ctx, buf); k != 0 || !errors.Is(err, ErrPeerClosed) {
					t.Fatalf("after the last message: %d messages, %v; want 0 and ErrPeerClosed", k, err)
				}
				if st := sb.Stats(); st.Received != n || st.Delivered != n {
					t.Errorf("Received %d Delivered %d, want %d", st.Received, st.Delivered, n)
				}
			})
		}
	}
}

// A session read only with RecvBatch never makes a Recv channel (the idle
// session's memory), and Done closes after the peer's FIN with the unread
// messages still readable, by RecvBatch or by a Recv made after Done.
func TestRecvQueueAfterDone(t *testing.T) {
	for _, late := range []string{"RecvBatch", "Recv", "RecvBatch after Close"} {
		t.Run(late, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newPair(t, &Config{Window: 64, RecvBuffer: 16}, nil)
				ctx := context.Background()
				buf := make([][]byte, 4)
				if err := p.sa.Send(ctx, msg(0, 32)); err != nil {
					t.Fatal(err)
				}
				if k, err := p.sb.RecvBatch(ctx, buf); k != 1 || err != nil {
					t.Fatalf("RecvBatch = %d, %v", k, err)
				}
				for i := 1; i <= 10; i++ {
					if err := p.sa.Send(ctx, msg(i, 32)); err != nil {
						t.Fatal(err)
					}
				}
				if err := p.sa.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				<-p.sb.Done() // 10 unread fit RecvBuffer: Done closes
				if p.sb.recvCh != nil {
					t.Fatal("a Recv channel exists although nobody called Recv")
				}
				if late == "RecvBatch after Close" {
					// What Done handed over stays readable, as a
					// channel's content would (the torture's invariant).
					p.sb.Close()
				}
				for i := 1; i <= 10; i++ {
					var m []byte
					if late == "Recv" {
						select {
						case m = <-p.sb.Recv():
						default:
							t.Fatalf("message %d not in the Recv channel made after Done", i)
						}
					} else {
						k, err := p.sb.RecvBatch(ctx, buf[:1])
						if k != 1 || err != nil {
							t.Fatalf("RecvBatch after Done: %d, %v", k, err)
						}
						m = buf[0]
					}
					if err := checkMsg(m, i, 32); err != nil {
						t.Fatal(err)
					}
				}
				if k, err := p.sb.RecvBatch(ctx, buf); k != 0 || !errors.Is(err, ErrPeerClosed) {
					t.Fatalf("the end: %d, %v; want 0 and ErrPeerClosed", k, err)
				}
				if st := p.sb.Stats(); st.Received != 11 || st.Delivered != 11 || st.Undelivered != 0 {
					t.Errorf("Stats %+v, want 11 received and delivered", st)
				}
			})
		})
	}
}

// Done waits while more is unread than a Recv channel would hold, and a
// request behind unread messages reaches Requests once they are taken.
func TestRecvQueueHoldsDoneAndRequests(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPair(t, &Config{Window: 64, RecvBuffer: 4}, nil)
		ctx := context.Background()
		for i := range 8 {
			if err := p.sa.Send(ctx, msg(i, 32)); err != nil {
				t.Fatal(err)
			}
		}
		replied := make(chan error, 1)
		go func() {
			r, err := p.sa.Request(ctx, []byte("q"))
			if err == nil && string(r) != "a" {
				err = fmt.Errorf("reply %q", r)
			}
			replied <- err
		}()
		synctest.Wait()
		select {
		case <-p.sb.Requests():
			t.Fatal("the request overtook 8 unread messages")
		default:
		}
		buf := make([][]byte, 8)
		if k, err := p.sb.RecvBatch(ctx, buf); k != 8 || err != nil {
			t.Fatalf("RecvBatch = %d, %v; want the 8 messages", k, err)
		}
		synctest.Wait()
		select {
		case q := <-p.sb.Requests():
			if err := q.Reply(ctx, []byte("a")); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("the request did not follow the messages")
		}
		if err := <-replied; err != nil {
			t.Fatal(err)
		}
		for i := range 8 {
			if err := p.sa.Send(ctx, msg(i, 32)); err != nil {
				t.Fatal(err)
			}
		}
		closed := make(chan error, 1)
		go func() { closed <- p.sa.Close() }()
		synctest.Wait()
		select {
		case <-p.sb.Done():
			t.Fatal("Done closed with 8 unread, more than RecvBuffer (4)")
		default:
		}
		if k, err := p.sb.RecvBatch(ctx, buf[:5]); k != 5 || err != nil {
			t.Fatalf("RecvBatch = %d, %v", k, err)
		}
		synctest.Wait()
		select {
		case <-p.sb.Done():
		default:
			t.Fatal("Done still open with 3 unread (RecvBuffer 4)")
		}
		if err := <-closed; err != nil {
			t.Fatalf("Close: %v", err)
		}
	})
}
