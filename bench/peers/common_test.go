package peers_test

import "time"

const (
	// sockBuffer matches the cnlink suite's socket buffers (4 MiB).
	sockBuffer = 4 << 20
	// runTimeout bounds one benchmark run: a stall fails it instead of
	// hanging the suite.
	runTimeout = 5 * time.Minute
	// writeBuffer is the TCP sender's bufio.Writer size.
	writeBuffer = 64 << 10
)
