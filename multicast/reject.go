package multicast

import "sync/atomic"

// reject names why a datagram or frame was dropped: the counter keys of
// docs/PROTOCOL.md §16.8.
type reject int

const (
	rejTruncated reject = iota
	rejMulticast
	rejMalformed
	rejChecksum
	rejNoStream
	rejEpoch
	rejCredentials
	rejCredentialsChanged
	rejEvicted
	rejRefused
	rejNakRate
	rejNakUnsent
	rejNakNoRoom
	rejStatusUnsent
	rejPublisher
	rejState
	rejWindow
	numRejects
)

var rejectNames = [numRejects]string{
	"truncated", "multicast", "malformed", "checksum", "no_stream", "epoch", "credentials",
	"credentials_changed", "evicted", "refused", "nak_rate", "nak_unsent", "nak_no_room",
	"status_unsent", "publisher", "state", "window",
}

func (r reject) String() string { return rejectNames[r] }

// rejects counts drops by reason.
type rejects [numRejects]atomic.Uint64

func (c *rejects) add(r reject) { c[r].Add(1) }

// snapshot returns the non-zero counts by name, and their total.
func (c *rejects) snapshot() (map[string]uint64, uint64) {
	var m map[string]uint64
	var total uint64
	for i := range c {
		if v := c[i].Load(); v != 0 {
			if m == nil {
				m = make(map[string]uint64)
			}
			m[rejectNames[i]] = v
			total += v
		}
	}
	return m, total
}
