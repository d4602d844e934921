// Command observe shows cnlink's OpenTelemetry metrics and traces. It
// wires the OpenTelemetry SDK to two exporters, Prometheus (served on a
// loopback address at /metrics) and stdout (JSON), runs a lossy session
// between two endpoints over real NETLINK_CONNECTOR sockets, with the fault
// injector between them, for -duration, and then prints what Prometheus
// sees: it scrapes its own /metrics and prints the cnlink_ series.
//
//	cd examples/observe
//	go run -mod=mod .                                     # 5 s at 5% loss
//	go run -mod=mod . -duration 1m -listen 127.0.0.1:9464 &
//	curl -s 127.0.0.1:9464/metrics | grep ^cnlink_
//
// The library depends on the OpenTelemetry API only; this program is
// where the SDK and the exporters come in (see docs/OBSERVABILITY.md), and
// it is a module of its own (go.mod here, with a replace directive
// pointing at the repository root), so that they are its dependencies and
// not those of every module that imports cnlink. It
// needs root or CAP_NET_ADMIN (unicast between user netlink ports). It
// exits with status 1 if the application saw a message lost, duplicated
// or out of order, and 2 on a setup error.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/cnlink/cnlink/reliable"
	"github.com/cnlink/cnlink/transport"
	"github.com/cnlink/cnlink/transport/fault"
)

// options are the command's flags.
type options struct {
	duration time.Duration
	listen   string
	interval time.Duration // stdout export period; 0: once, at the end
	stdout   bool
	traces   bool
	size     int
	seed     uint64
	send     fault.Direction
	recv     fault.Direction
}

func main() {
	var o options
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "how long to run traffic")
	flag.StringVar(&o.listen, "listen", "127.0.0.1:9464", "loopback address of the Prometheus /metrics endpoint (port 0: any free port)")
	flag.DurationVar(&o.interval, "interval", 0, "period of the stdout JSON export (0: once, at the end)")
	flag.BoolVar(&o.stdout, "stdout", true, "export metrics to stdout as JSON")
	flag.BoolVar(&o.traces, "traces", false, "print spans (sessions, requests) to stdout as JSON")
	flag.IntVar(&o.size, "size", 256, "message size in bytes (>= 8)")
	flag.Uint64Var(&o.seed, "seed", uint64(time.Now().UnixNano()), "fault injector seed")
	loss := flag.Float64("loss", 0.05, "probability that a datagram is dropped (each direction)")
	dup := flag.Float64("dup", 0.01, "probability that a datagram is duplicated")
	reorder := flag.Float64("reorder", 0.01, "probability that a datagram is held back and reordered")
	overrun := flag.Float64("overrun", 0.002, "probability of an injected receive overrun (ENOBUFS) dropping 3 datagrams")
	eagain := flag.Float64("eagain", 0.002, "probability of a burst of 5 sends refused with EAGAIN")
	flag.Parse()
	o.send = fault.Direction{Loss: *loss, Duplicate: *dup, Reorder: *reorder, EAGAINBurst: fault.Burst{P: *eagain, Len: 5}}
	o.recv = fault.Direction{OverrunBurst: fault.Burst{P: *overrun, Len: 3}}
	if o.size < 8 || o.duration <= 0 {
		fmt.Fprintln(os.Stderr, "observe: -size must be >= 8 and -duration positive")
		os.Exit(2)
	}
	if err := run(context.Background(), o, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "observe:", err)
		var v *violation
		if errors.As(err, &v) {
			os.Exit(1)
		}
		if errors.Is(err, transport.ErrPermission) {
			fmt.Fprintln(os.Stderr, "observe: run it as root (or with CAP_NET_ADMIN)")
		}
		os.Exit(2)
	}
}

// violation is a broken delivery guarantee, as the application saw it.
type violation struct{ msg string }

func (v *violation) Error() string { return v.msg }

// telemetry is the SDK side: providers, exporters and the HTTP server.
type telemetry struct {
	mp     *sdkmetric.MeterProvider
	tp     *sdktrace.TracerProvider
	srv    *http.Server
	served chan error
	url    string
}

func setup(o options, out io.Writer) (*telemetry, error) {
	res := resource.NewSchemaless(attribute.String("service.name", "cnlink-observe"))
	// Prometheus: a registry of our own, rather than the global one, so
	// that the program (and its test) controls what is served.
	reg := prometheus.NewRegistry()
	prom, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, err
	}
	opts := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	if o.stdout {
		exp, err := stdoutmetric.New(stdoutmetric.WithWriter(out))
		if err != nil {
			return nil, err
		}
		interval := o.interval
		if interval <= 0 {
			interval = 24 * time.Hour // only the final flush exports
		}
		opts = append(opts, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp, sdkmetric.WithInterval(interval))))
	}
	t := &telemetry{mp: sdkmetric.NewMeterProvider(opts...), served: make(chan error, 1)}
	topts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res)}
	if o.traces {
		exp, err := stdouttrace.New(stdouttrace.WithWriter(out))
		if err != nil {
			return nil, err
		}
		topts = append(topts, sdktrace.WithSyncer(exp))
	}
	t.tp = sdktrace.NewTracerProvider(topts...)

	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return nil, err
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("-listen %s is not a loopback address", o.listen)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { t.served <- t.srv.Serve(ln) }()
	t.url = "http://" + ln.Addr().String() + "/metrics"
	return t, nil
}

func (t *telemetry) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = t.srv.Shutdown(ctx)
	<-t.served
	_ = t.mp.Shutdown(ctx)
	_ = t.tp.Shutdown(ctx)
}

// scopeLabels matches the instrumentation-scope labels that the exporter
// adds to every sample, to print samples readably.
var scopeLabels = regexp.MustCompile(`otel_scope_[a-z_]+="[^"]*",?`)

// scrape fetches the Prometheus endpoint and returns its cnlink_ samples.
func (t *telemetry) scrape() ([]string, error) {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(t.url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", t.url, resp.Status)
	}
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if strings.HasPrefix(sc.Text(), "cnlink_") {
			lines = append(lines, sc.Text())
		}
	}
	return lines, sc.Err()
}

func openEndpoint(t *telemetry, seed uint64, o options) (*reliable.Endpoint, *fault.Conn, error) {
	tr, err := transport.Open(transport.Config{ReadBuffer: 1 << 20, WriteBuffer: 1 << 20})
	if err != nil {
		return nil, nil, err
	}
	fc := fault.Wrap(tr, fault.Config{Seed: seed, Send: o.send, Recv: o.recv})
	ep, err := reliable.NewEndpoint(fc, &reliable.Config{MeterProvider: t.mp, TracerProvider: t.tp})
	if err != nil {
		fc.Close()
		return nil, nil, err
	}
	return ep, fc, nil
}

func run(ctx context.Context, o options, out io.Writer) error {
	tel, err := setup(o, out)
	if err != nil {
		return err
	}
	defer tel.close()
	a, fa, err := openEndpoint(tel, o.seed, o)
	if err != nil {
		return err
	}
	defer a.Close()
	b, fb, err := openEndpoint(tel, o.seed+1, o)
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(out, "cnlink observe: port %d -> port %d over NETLINK_CONNECTOR for %v, faults each way: loss %.1f%%, duplication %.1f%%, reordering %.1f%% (seed %d)\n",
		a.LocalPort(), b.LocalPort(), o.duration, o.send.Loss*100, o.send.Duplicate*100, o.send.Reorder*100, o.seed)
	fmt.Fprintf(out, "Prometheus: %s\n", tel.url)

	setupCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	accepted := make(chan *reliable.Session, 1)
	go func() {
		s, _ := b.Accept(setupCtx)
		accepted <- s
	}()
	sa, err := a.Dial(setupCtx, b.LocalPort(), transport.CbID{})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	sb := <-accepted
	if sb == nil {
		return errors.New("accept failed")
	}

	sent, requests, err := traffic(ctx, o, sa, sb)
	if err != nil {
		return err
	}
	// A graceful close, so that the session metrics show it too.
	if err := sa.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	<-sb.Done()

	lines, err := tel.scrape()
	if err != nil {
		return fmt.Errorf("scraping our own /metrics: %w", err)
	}
	fmt.Fprintf(out, "\n%d messages and %d requests in %v. Prometheus sees (histogram buckets and otel_scope_* labels left out):\n\n", sent, requests, o.duration)
	for _, l := range lines {
		if !strings.Contains(l, "_bucket{") {
			l = scopeLabels.ReplaceAllString(l, "")
			fmt.Fprintln(out, strings.NewReplacer("{,", "{", ",}", "}", "{}", "").Replace(l))
		}
	}
	sa1, sb1 := fa.Stats(), fb.Stats()
	fmt.Fprintf(out, "\nThe fault injector's side of the story:\n  a: %v\n  b: %v\n", sa1, sb1)
	if o.stdout {
		fmt.Fprintln(out, "\nstdoutmetric export (JSON):")
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if err := tel.mp.ForceFlush(fctx); err != nil {
			return err
		}
	}
	return nil
}

// traffic streams numbered messages from a to b, and runs requests from a
// to b, for o.duration. b checks that every message arrives once and in
// order.
func traffic(ctx context.Context, o options, sa, sb *reliable.Session) (sent, requests int, err error) {
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var total atomic.Int64 // messages queued by the sender
	sendDone := make(chan error, 1)
	go func() {
		const batch = 64
		buf := make([]byte, batch*o.size)
		msgs := make([][]byte, batch)
		for i := 0; ; i += batch {
			for j := range batch {
				msgs[j] = buf[j*o.size : (j+1)*o.size]
				binary.LittleEndian.PutUint64(msgs[j], uint64(i+j))
			}
			n, err := sa.SendBatch(ctx, msgs)
			total.Add(int64(n))
			if err != nil {
				if ctx.Err() != nil {
					err = nil
				}
				sendDone <- err
				return
			}
		}
	}()
	// Requests share the stream with messages: b's handler answers them
	// while the receiver reads messages.
	reqDone := make(chan error, 1)
	go func() {
		n := 0
		for ctx.Err() == nil {
			q := []byte(fmt.Sprintf("request %d", n))
			// The request itself outlives the traffic window: a reply
			// still in flight when the session closes would be counted
			// as sent and never as received.
			rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			r, err := sa.Request(rctx, q)
			rcancel()
			if err != nil {
				if ctx.Err() != nil {
					break
				}
				reqDone <- err
				return
			}
			if string(r) != "re: "+string(q) {
				reqDone <- &violation{fmt.Sprintf("request %d: wrong reply %q", n, r)}
				return
			}
			n++
			time.Sleep(10 * time.Millisecond)
		}
		requests = n
		reqDone <- nil
	}()
	var next uint64
	for done := false; !done; {
		select {
		case m := <-sb.Recv():
			if v := binary.LittleEndian.Uint64(m); v != next {
				return 0, 0, &violation{fmt.Sprintf("message %d arrived when %d was due: lost, duplicated or reordered", v, next)}
			}
			next++
		case q := <-sb.Requests():
			if err := q.Reply(context.Background(), append([]byte("re: "), q.Data...)); err != nil {
				return 0, 0, fmt.Errorf("reply: %w", err)
			}
		case <-sb.Done():
			return 0, 0, fmt.Errorf("session ended: %w", sb.Err())
		case <-ctx.Done():
			done = true
		}
	}
	if err := <-sendDone; err != nil {
		return 0, 0, fmt.Errorf("send: %w", err)
	}
	if err := <-reqDone; err != nil {
		return 0, 0, fmt.Errorf("request: %w", err)
	}
	// Everything queued arrives: read the rest.
	for want := uint64(total.Load()); next < want; next++ {
		select {
		case m := <-sb.Recv():
			if v := binary.LittleEndian.Uint64(m); v != next {
				return 0, 0, &violation{fmt.Sprintf("message %d arrived when %d was due", v, next)}
			}
		case <-sb.Done():
			return 0, 0, &violation{fmt.Sprintf("session ended after %d of %d messages: %v", next, want, sb.Err())}
		case <-time.After(30 * time.Second):
			return 0, 0, &violation{fmt.Sprintf("message %d of %d never arrived", next, want)}
		}
	}
	return int(next), requests, nil
}
