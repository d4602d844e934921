// Package otelcheck holds the tests of cnlink's OpenTelemetry
// instrumentation that need the OpenTelemetry SDK: the metrics of
// package reliable checked against what really happened on the wire
// under injected faults, the instruments registered checked against the
// tables of docs/OBSERVABILITY.md (package multicast's too: a publisher
// and subscribers over memnet with PublisherConfig.MeterProvider and
// SubscriberConfig.MeterProvider, evictions by reason, the global provider
// as the default), the instrumentation scope, and the cost of metrics
// (benchmarks).
//
// It is a module of its own (github.com/cnlink/cnlink/otelcheck, with a
// replace directive pointing at the repository root) so that the root
// module, and therefore every module that imports cnlink, requires the
// OpenTelemetry API only, never the SDK. Run it from this directory:
//
//	go test -mod=mod -race ./...
//
// make test does.
package otelcheck
