package proc

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strconv"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
	"github.com/cnlink/cnlink/transport/memnet"
)

// These tests run a Monitor over transport/memnet against fakeKernel,
// inside testing/synctest bubbles: the retransmission schedule runs on
// fake time, and synctest.Wait lets the Monitor's goroutines settle
// before the test looks.

// listenFake opens a memnet Conn (wrapped by wrap, if not nil) and starts
// a Monitor on it; it fails the test if Listen fails.
func listenFake(t *testing.T, k *fakeKernel, cfg Config, wrap func(*testing.T, transport.Transport) transport.Transport) *Monitor {
	t.Helper()
	m, err := listenFakeErr(t, k, context.Background(), cfg, wrap)
	if err != nil {
		t.Fatalf("Listen: %v", err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

func listenFakeErr(t *testing.T, k *fakeKernel, ctx context.Context, cfg Config, wrap func(*testing.T, transport.Transport) transport.Transport) (*Monitor, error) {
	t.Helper()
	c, err := k.net.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	var tr transport.Transport = c
	if wrap != nil {
		tr = wrap(t, c)
	}
	cfg.Transport = tr
	return Listen(ctx, cfg)
}

// next returns the next event, failing the test if none is ready once
// the bubble has settled.
func next(t *testing.T, m *Monitor) Event {
	t.Helper()
	synctest.Wait()
	select {
	case ev := <-m.Events():
		return ev
	default:
		t.Fatal("no event ready")
		return Event{}
	}
}

// none fails the test if an event is ready once the bubble has settled.
func none(t *testing.T, m *Monitor) {
	t.Helper()
	synctest.Wait()
	select {
	case ev := <-m.Events():
		t.Fatalf("unexpected event %v", ev)
	default:
	}
}

func listens(rs []fakeRequest) (n int) {
	for _, r := range rs {
		if r.op == opListen {
			n++
		}
	}
	return n
}

func TestListenConfirmedAndClose(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		m := listenFake(t, k, Config{}, nil)
		rs := k.requestsCopy()
		if len(rs) != 1 || rs[0].op != opListen || rs[0].filtered || !rs[0].answered {
			t.Fatalf("requests %+v, want one answered 4-byte LISTEN", rs)
		}
		if rs[0].from != m.LocalPort() || rs[0].nlPID != m.LocalPort() {
			t.Errorf("request from port %d nlmsg_pid %d, monitor port %d", rs[0].from, rs[0].nlPID, m.LocalPort())
		}
		// The answer is consumed, never delivered.
		none(t, m)
		if err := m.Err(); err != nil {
			t.Fatalf("Err while running: %v", err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		<-m.Done()
		if !errors.Is(m.Err(), ErrClosed) {
			t.Errorf("Err = %v, want ErrClosed", m.Err())
		}
		rs = k.requestsCopy()
		if last := rs[len(rs)-1]; last.op != opIgnore || last.from != m.LocalPort() {
			t.Errorf("last request %+v, want IGNORE from the monitor", last)
		}
		// Events is never closed.
		select {
		case ev, ok := <-m.Events():
			t.Fatalf("Events after Close: %v %v", ev, ok)
		default:
		}
	})
}

// TestListenRetransmits loses the first two requests: Listen retransmits
// on the probe schedule, each time with a fresh ack, and returns once the
// third is answered.
func TestListenRetransmits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		k.drop = 2
		start := time.Now()
		listenFake(t, k, Config{}, nil)
		elapsed := time.Since(start)
		rs := k.requestsCopy()
		if len(rs) != 3 || listens(rs) != 3 || !rs[2].answered {
			t.Fatalf("requests %+v, want three LISTENs, the last answered", rs)
		}
		if rs[0].ack == rs[1].ack || rs[1].ack == rs[2].ack || rs[0].seq == rs[1].seq {
			t.Errorf("retransmissions reuse seq/ack: %+v", rs)
		}
		// ProbeConfig: 10 ms, then 20 ms, jitter 10%.
		if elapsed < 27*time.Millisecond || elapsed > 34*time.Millisecond {
			t.Errorf("answered after %v, want about 30ms of backoff", elapsed)
		}
	})
}

// TestListenThroughFaultInjector loses requests at random with the fault
// injector; retransmission gets one through.
func TestListenThroughFaultInjector(t *testing.T) {
	seed := rand.Uint64()
	if s := os.Getenv("CNLINK_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	for i := range 8 {
		seed := seed + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				k := newFakeKernel(t)
				var fc *fault.Conn
				m := listenFake(t, k, Config{}, func(t *testing.T, tr transport.Transport) transport.Transport {
					fc = fault.Wrap(tr, fault.Config{Seed: seed, Send: fault.Direction{Loss: 0.5}})
					return fc
				})
				st := fc.Stats()
				rs := k.requestsCopy()
				if uint64(listens(rs)) != st.Send.Passed || st.Send.Passed == 0 {
					t.Fatalf("kernel saw %d LISTENs, injector passed %d: %v", listens(rs), st.Send.Passed, st)
				}
				t.Logf("subscribed after %d lost requests: %v", st.Send.Lost, st)
				// Events flow through the wrapper.
				k.emit(0, Event{Kind: KindExec, PID: 42, TID: 42})
				if ev := next(t, m); ev.Kind != KindExec || ev.PID != 42 {
					t.Fatalf("got %v", ev)
				}
			})
		})
	}
}

// TestListenIgnoresOtherAnswers: the kernel multicasts its answers to
// every listener, so answers to other processes' requests arrive too. One
// carrying an error must neither fail nor complete Listen: only ack + 1
// of one of our own requests does.
func TestListenIgnoresOtherAnswers(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		k.foreignOnly = 1
		listenFake(t, k, Config{}, nil)
		rs := k.requestsCopy()
		if len(rs) != 2 || !rs[1].answered {
			t.Fatalf("requests %+v, want a retransmission after the foreign answer", rs)
		}
	})
}

func TestListenRefused(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		k.errno = uint32(syscall.EINVAL)
		m, err := listenFakeErr(t, k, context.Background(), Config{}, nil)
		var le *ListenError
		if m != nil || !errors.As(err, &le) || !errors.Is(err, ErrRefused) || !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("Listen = %v, %v; want a *ListenError matching ErrRefused and EINVAL", m, err)
		}
		if le.Errno != syscall.EINVAL {
			t.Errorf("Errno = %v", le.Errno)
		}
		// The failed Monitor still unsubscribed and released its socket.
		rs := k.requestsCopy()
		if rs[len(rs)-1].op != opIgnore {
			t.Errorf("no IGNORE after a failed Listen: %+v", rs)
		}
	})
}

func TestListenNoAnswer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		k.silent = true
		start := time.Now()
		_, err := listenFakeErr(t, k, context.Background(), Config{}, nil)
		if !errors.Is(err, ErrNoAnswer) {
			t.Fatalf("Listen: %v, want ErrNoAnswer", err)
		}
		// ProbeConfig gives up after 10 s.
		if d := time.Since(start); d < 9*time.Second || d > 10*time.Second+time.Millisecond {
			t.Errorf("gave up after %v", d)
		}
		if n := listens(k.requestsCopy()); n < 10 || n > 20 {
			t.Errorf("%d LISTENs in 10 s of backoff", n)
		}
	})
}

func TestListenContextDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		k.silent = true
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := listenFakeErr(t, k, ctx, Config{}, nil)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Listen: %v, want DeadlineExceeded", err)
		}
	})
}

func TestListenInvalidConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Events: 0x400},
		{Buffer: -1},
		{ReadBuffer: -1},
		{Probe: &retry.ScheduleConfig{}}, // never gives up
		{Probe: &retry.ScheduleConfig{Jitter: 2, GiveUpAfter: time.Second}},
	} {
		if _, err := Listen(context.Background(), cfg); err == nil {
			t.Errorf("Listen(%+v) succeeded", cfg)
		}
	}
}

// TestListenKernelFilter: the filtered subscription is confirmed through
// an unfiltered probe in the proc_input form, then narrowed; the kernel's
// sequence numbers then count filtered-out events too, and the Monitor
// must not report them as lost.
func TestListenKernelFilter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		m := listenFake(t, k, Config{KernelFilter: true, Events: MaskFork | MaskExit}, nil)
		rs := k.requestsCopy()
		want := []struct {
			filtered bool
			mask     Mask
		}{{true, MaskAll}, {false, MaskAll}, {true, MaskFork | MaskExit}}
		if len(rs) != len(want) {
			t.Fatalf("requests %+v", rs)
		}
		for i, w := range want {
			if rs[i].op != opListen || rs[i].filtered != w.filtered || rs[i].mask != w.mask {
				t.Errorf("request %d: %+v, want filtered=%v mask=%#x", i, rs[i], w.filtered, uint32(w.mask))
			}
		}
		k.emit(0, Event{Kind: KindFork, PID: 10, TID: 10, ParentPID: 1, ParentTID: 1})
		k.emit(0, Event{Kind: KindExec, PID: 10, TID: 10})
		k.emit(0, Event{Kind: KindComm, PID: 10, TID: 10})
		k.emit(0, Event{Kind: KindExit, PID: 10, TID: 10})
		if ev := next(t, m); ev.Kind != KindFork {
			t.Fatalf("got %v, want fork", ev)
		}
		if ev := next(t, m); ev.Kind != KindExit {
			t.Fatalf("got %v, want exit (no loss report for filtered events)", ev)
		}
		none(t, m)
		if st := m.Stats(); st.Missed != 0 {
			t.Errorf("Missed = %d with a kernel filter", st.Missed)
		}
	})
}

func TestListenKernelFilterUnsupported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		k.noFilterForm = true
		_, err := listenFakeErr(t, k, context.Background(), Config{KernelFilter: true, Events: MaskExit}, nil)
		if !errors.Is(err, ErrFilterUnsupported) {
			t.Fatalf("Listen: %v, want ErrFilterUnsupported", err)
		}
		n := 0
		for _, r := range k.requestsCopy() {
			if r.op == opListen && !r.filtered && r.answered {
				n++
			}
		}
		if n != filterProbeRounds {
			t.Errorf("%d answered rounds, want %d", n, filterProbeRounds)
		}
	})
}

// TestGapsInStream: events missing from a CPU's sequence are reported
// where they were missed, with the exact count and location, and the
// stream goes on.
func TestGapsInStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		m := listenFake(t, k, Config{}, nil)
		a := k.emit(0, Event{Kind: KindFork, PID: 2, TID: 2, ParentPID: 1, ParentTID: 1})
		b := k.emit(1, Event{Kind: KindExec, PID: 2, TID: 2})
		k.skip(0, 3)
		c := k.emit(0, Event{Kind: KindExit, PID: 2, TID: 2, ExitCode: 0x100, ExitSignal: 17, ParentPID: 1, ParentTID: 1})
		d := k.emit(1, Event{Kind: KindSID, PID: 3, TID: 3})

		for _, want := range []Event{a, b} {
			if got := next(t, m); !reflect.DeepEqual(got, want) {
				t.Fatalf("got %+v\nwant %+v", got, want)
			}
		}
		lost := next(t, m)
		wantLoss := Loss{Missed: 3, CPU: 0, FirstSeq: a.Seq + 1, After: a.Timestamp, Before: c.Timestamp}
		if lost.Kind != KindLost || lost.Loss != wantLoss {
			t.Fatalf("got %+v, want loss %+v", lost, wantLoss)
		}
		if got := next(t, m); !reflect.DeepEqual(got, c) {
			t.Fatalf("got %+v, want %+v", got, c)
		}
		if got := next(t, m); !reflect.DeepEqual(got, d) {
			t.Fatalf("got %+v, want %+v", got, d)
		}
		if st := m.Stats(); st.Missed != 3 || st.Received != 5 { // the ack, then 4
			t.Errorf("stats %+v", st)
		}
	})
}

// drain returns every event ready once the bubble has settled.
func drain(m *Monitor) []Event {
	synctest.Wait()
	var evs []Event
	for {
		select {
		case ev := <-m.Events():
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}

// TestOverrun holds the reader back while the kernel floods the socket:
// the overrun is reported first, the receive buffer doubles, and once the
// queue is drained, the next event of each CPU reveals exactly how many
// events the overrun cost.
func TestOverrun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		max     int
		wantBuf int
	}{
		{"grow", 1 << 20, 64 << 10},
		{"capped", 32 << 10, 32 << 10},
		{"no growth", -1, 2304},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				k := newFakeKernel(t)
				var g *gated
				m := listenFake(t, k, Config{ReadBuffer: 2304, MaxReadBuffer: tc.max}, func(_ *testing.T, tr transport.Transport) transport.Transport {
					g = newGated(tr.(*memnet.Conn))
					return g
				})
				synctest.Wait() // the reader waits inside memnet's Receive
				g.set(false)
				const flood = 40
				for i := range flood {
					k.emit(uint32(i%2), Event{Kind: KindExec, PID: 100 + i, TID: 100 + i})
				}
				g.set(true)
				evs := drain(m)
				// One more event per CPU reveals the gaps.
				k.emit(0, Event{Kind: KindExec, PID: 1000, TID: 1000})
				k.emit(1, Event{Kind: KindExec, PID: 1001, TID: 1001})
				evs = append(evs, drain(m)...)

				var got, missed, overruns int
				for _, ev := range evs {
					switch {
					case ev.Kind == KindExec && ev.PID < 1000:
						got++
					case ev.Kind == KindLost:
						if ev.Loss.Overruns > 0 && (got > 1 || missed > 0) {
							t.Errorf("overrun reported after %d events and %d missed", got, missed)
						}
						overruns += int(ev.Loss.Overruns)
						missed += int(ev.Loss.Missed)
					}
				}
				if overruns != 1 || got >= flood {
					t.Fatalf("got %d events, %d overruns: the flood did not overflow", got, overruns)
				}
				if got+missed != flood {
					t.Errorf("received %d + missed %d != emitted %d", got, missed, flood)
				}
				st := m.Stats()
				if st.ReadBuffer != tc.wantBuf {
					t.Errorf("Stats.ReadBuffer %d after one overrun, want %d", st.ReadBuffer, tc.wantBuf)
				}
				if rb, _ := g.ReadBuffer(); rb != 2*tc.wantBuf {
					t.Errorf("socket buffer %d, want %d", rb, 2*tc.wantBuf)
				}
				if st.Overruns != 1 || st.Missed != uint64(missed) {
					t.Errorf("stats %+v", st)
				}
				t.Logf("flood %d: received %d, missed %d, stats %+v", flood, got, missed, st)
			})
		})
	}
}

// TestSlowConsumer: an application that does not read gets at most
// Config.Buffer events; the rest are dropped and counted, and the count
// arrives as soon as the application makes room, without waiting for
// another event. Events after the report flow normally.
func TestSlowConsumer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		m := listenFake(t, k, Config{Buffer: 4}, nil)
		for i := range 10 {
			k.emit(0, Event{Kind: KindExec, PID: 100 + i, TID: 100 + i})
		}
		synctest.Wait()
		if n := len(m.Events()); n != 4 {
			t.Fatalf("%d events buffered, want 4", n)
		}
		for i := range 4 {
			if ev := next(t, m); ev.Kind != KindExec || ev.PID != 100+i {
				t.Fatalf("event %d: %v", i, ev)
			}
		}
		ev := next(t, m)
		if ev.Kind != KindLost || ev.Loss != (Loss{Dropped: 6, CPU: AnyCPU}) {
			t.Fatalf("got %+v, want a report of 6 dropped", ev)
		}
		none(t, m)
		k.emit(0, Event{Kind: KindExec, PID: 200, TID: 200})
		if ev := next(t, m); ev.PID != 200 {
			t.Fatalf("after the report: %v", ev)
		}
		if st := m.Stats(); st.Dropped != 6 || st.Missed != 0 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestSlowConsumerMergesLoss: while a loss report waits for room, kernel
// gaps and overruns join it, and no later event overtakes it. The report
// holds everything detected before the application made room, whether the
// flusher was already waiting with an earlier copy of it ("flusher
// waiting": it settles between the first drop and the rest) or had not
// yet looked ("reader first": the interleaving is left to the scheduler).
func TestSlowConsumerMergesLoss(t *testing.T) {
	for _, settle := range []bool{false, true} {
		name := "reader first"
		if settle {
			name = "flusher waiting"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				k := newFakeKernel(t)
				m := listenFake(t, k, Config{Buffer: 2}, nil)
				k.emit(0, Event{Kind: KindExec, PID: 1, TID: 1})
				k.emit(0, Event{Kind: KindExec, PID: 2, TID: 2})
				k.emit(0, Event{Kind: KindExec, PID: 3, TID: 3}) // dropped: full
				if settle {
					// The flusher now waits for room with a report of
					// one drop; what follows must still join it.
					synctest.Wait()
				}
				k.skip(0, 5)
				k.emit(0, Event{Kind: KindExec, PID: 4, TID: 4}) // reveals 5 missed, then dropped
				synctest.Wait()
				next(t, m)
				next(t, m)
				ev := next(t, m)
				if ev.Kind != KindLost || ev.Loss.Dropped != 2 || ev.Loss.Missed != 5 || ev.Loss.CPU != 0 {
					t.Fatalf("got %+v, want one report: 2 dropped, 5 missed on CPU 0", ev)
				}
				none(t, m)
			})
		})
	}
}

// TestRejectsForgeries: only datagrams from port 0 (the kernel stamps the
// sender's port) on the proc group or unicast, for cb_id 1:1, are events.
// A user port imitating cn_proc, whatever its nlmsg_pid says, is dropped
// and counted, and so is a kernel message for another connector id.
func TestRejectsForgeries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		m := listenFake(t, k, Config{}, nil)
		fake := Event{Kind: KindFork, What: whatFork, PID: 666, TID: 666, ParentPID: 1, ParentTID: 1}
		b := frameOf(&fake) // nlmsg_pid 0, as the kernel's
		if err := k.net.Inject(77, transport.Addr{Port: m.LocalPort()}, b); err != nil {
			t.Fatal(err)
		}
		if err := k.net.Inject(77, transport.Addr{Group: Group}, b); err != nil {
			t.Fatal(err)
		}
		other, _ := transport.AppendFrame(nil, &transport.Frame{
			NlType: transport.NlmsgDone, ID: transport.CbID{Idx: 2, Val: 1}, Payload: AppendEvent(nil, &fake),
		})
		if err := k.net.Inject(0, transport.Addr{Group: Group}, other); err != nil {
			t.Fatal(err)
		}
		// A kernel unicast is accepted, as the kernel may address a port.
		real := k.emit(0, Event{Kind: KindExec, PID: 7, TID: 7})
		if err := k.net.Inject(0, transport.Addr{Port: m.LocalPort()}, frameOf(&Event{Kind: KindExec, What: whatExec, PID: 8, TID: 8, Seq: real.Seq + 1})); err != nil {
			t.Fatal(err)
		}
		if ev := next(t, m); ev.PID != 7 {
			t.Fatalf("got %v", ev)
		}
		if ev := next(t, m); ev.PID != 8 {
			t.Fatalf("got %v", ev)
		}
		none(t, m)
		if st := m.Stats(); st.Rejected != 3 {
			t.Errorf("Rejected = %d, want 3", st.Rejected)
		}
	})
}

// TestMalformedAndUnknown: undecodable kernel messages are counted and
// skipped; a type this package does not know is delivered as KindUnknown
// with its bytes.
func TestMalformedAndUnknown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		m := listenFake(t, k, Config{}, nil)
		short, _ := transport.AppendFrame(nil, &transport.Frame{NlType: transport.NlmsgDone, ID: procID, Payload: make([]byte, 12)})
		notDone, _ := transport.AppendFrame(nil, &transport.Frame{NlType: 2, ID: procID, Payload: make([]byte, EventLen)})
		for _, b := range [][]byte{{1, 2, 3}, short, notDone} {
			if err := k.net.Inject(0, transport.Addr{Group: Group}, b); err != nil {
				t.Fatal(err)
			}
		}
		raw := make([]byte, EventLen)
		ne.PutUint32(raw, 0x400)
		k.emit(0, Event{Kind: KindUnknown, Raw: raw})
		ev := next(t, m)
		if ev.Kind != KindUnknown || ev.What != 0x400 || len(ev.Raw) != EventLen {
			t.Fatalf("got %+v", ev)
		}
		none(t, m)
		if st := m.Stats(); st.Malformed != 3 || st.Unknown != 1 {
			t.Errorf("stats %+v", st)
		}
	})
}

// TestLocalFilter: without KernelFilter every event reaches the socket
// (so gaps keep meaning loss) and the Monitor applies Config.Events by the
// kernel's own rule.
func TestLocalFilter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		m := listenFake(t, k, Config{Events: MaskNonzeroExit}, nil)
		k.emit(0, Event{Kind: KindFork, PID: 5, TID: 5})
		k.emit(0, Event{Kind: KindExit, PID: 5, TID: 5})
		k.emit(0, Event{Kind: KindExit, PID: 6, TID: 6, ExitCode: 0x100})
		if ev := next(t, m); ev.PID != 6 {
			t.Fatalf("got %v, want the non-zero exit", ev)
		}
		none(t, m)
		if st := m.Stats(); st.Filtered != 2 || st.Missed != 0 {
			t.Errorf("stats %+v", st)
		}
		if rs := k.requestsCopy(); rs[0].filtered {
			t.Errorf("a local filter sent a kernel filter: %+v", rs[0])
		}
	})
}

func TestContextCancelEndsMonitor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		ctx, cancel := context.WithCancel(context.Background())
		m, err := listenFakeErr(t, k, ctx, Config{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		k.emit(0, Event{Kind: KindExec, PID: 9, TID: 9})
		synctest.Wait()
		cancel()
		<-m.Done()
		if !errors.Is(m.Err(), context.Canceled) {
			t.Errorf("Err = %v, want context.Canceled", m.Err())
		}
		// Buffered events stay readable after the end.
		if ev := next(t, m); ev.PID != 9 {
			t.Errorf("got %v", ev)
		}
		rs := k.requestsCopy()
		if rs[len(rs)-1].op != opIgnore {
			t.Errorf("no IGNORE on cancellation")
		}
		if err := m.Close(); err != nil {
			t.Errorf("Close after cancellation: %v", err)
		}
	})
}

// TestTransportFailureEndsMonitor: a transport that fails under the
// Monitor ends it with that error; it does not spin or hang.
func TestTransportFailureEndsMonitor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		k := newFakeKernel(t)
		var c *memnet.Conn
		m := listenFake(t, k, Config{}, func(_ *testing.T, tr transport.Transport) transport.Transport {
			c = tr.(*memnet.Conn)
			return tr
		})
		_ = c.Close() // behind the Monitor's back
		<-m.Done()
		if !errors.Is(m.Err(), transport.ErrClosed) || errors.Is(m.Err(), ErrClosed) {
			t.Errorf("Err = %v, want the transport's ErrClosed", m.Err())
		}
	})
}
