// Package cnlink holds what belongs to the module as a whole rather than
// to one of its packages: its version. The library itself is in the
// subpackages (reliable, proc, transport, wire, window, retry); see the
// README.
package cnlink

// Version is the version of the cnlink module, in semantic-versioning
// form without the leading "v". It is the instrumentation scope version
// of the OpenTelemetry meters and tracers of the reliable and proc
// packages, so that a backend can tell which release produced a series.
// A release sets it to the tag it is made from; between releases it ends
// in "-dev".
const Version = "0.1.0-dev"
