package proc

import (
	"errors"
	"fmt"

	"github.com/cnlink/cnlink/retry"
	"github.com/cnlink/cnlink/transport"
)

// Defaults for the zero fields of Config.
const (
	DefaultBuffer        = 4096
	DefaultMaxReadBuffer = 4 << 20
)

// Config configures Listen. The zero value subscribes to every event on a
// new NETLINK_CONNECTOR socket with default limits.
type Config struct {
	// Transport, if set, is used instead of a new NETLINK_CONNECTOR
	// socket (transport.Open): tests pass a transport/memnet Conn, and a
	// caller may pass a socket it configured itself. Listen joins it to
	// Group. The Monitor owns it from then on and closes it.
	Transport transport.Transport

	// Events selects the event types delivered; zero means MaskAll.
	// Without KernelFilter every event still reaches the socket (which
	// keeps loss detection exact) and the Monitor drops the others.
	Events Mask

	// KernelFilter asks the kernel to filter by Events (the struct
	// proc_input subscription of Linux 6.6+), so that unwanted events
	// never cost a wakeup. Listen fails with ErrFilterUnsupported on an
	// older kernel. Two costs: the kernel's per-CPU sequence numbers
	// count the events it filters out too, so gaps stop meaning loss and
	// Loss.Missed stays zero (overruns are still reported); and the
	// kernel applies the filter to its own answers, so the filtered
	// request is confirmed by the answer to an unfiltered one sent just
	// before it on the same socket (the kernel handles requests
	// synchronously inside sendto, so a request that was sent was
	// applied).
	KernelFilter bool

	// Buffer is how many events wait for the application before newer
	// ones are dropped and reported (Loss.Dropped). Zero means
	// DefaultBuffer. The buffer is a channel allocated up front, about
	// 200 bytes per slot.
	Buffer int

	// ReadBuffer is the socket's initial receive buffer (SO_RCVBUF) in
	// bytes; zero keeps the system default (net.core.rmem_default). The
	// kernel charges about 768 bytes per queued event.
	ReadBuffer int

	// MaxReadBuffer caps the automatic growth of the receive buffer:
	// after each overrun the Monitor doubles it, up to this many bytes.
	// Zero means DefaultMaxReadBuffer; a negative value turns growth off.
	// Growth needs a transport with SetReadBuffer and ReadBuffer methods,
	// as transport.Conn and memnet.Conn have.
	MaxReadBuffer int

	// NoExecComm turns off reading the command name of exec events (see
	// Event.Comm): one open and read of /proc/PID/comm per exec event, on
	// the reader's path (about 7 µs on a 2-core 6.18 machine,
	// BenchmarkReadComm). Set it when exec storms must cost nothing more
	// than the kernel's events.
	NoExecComm bool

	// Probe paces the retransmission of the subscription request until
	// the kernel answers; Listen fails with ErrNoAnswer when it gives up.
	// Nil means retry.ProbeConfig() (10 ms doubling to 1 s, giving up
	// after 10 s).
	Probe *retry.ScheduleConfig
}

func (c *Config) validate() error {
	var errs []error
	if c.Events&^MaskAll != 0 {
		errs = append(errs, fmt.Errorf("bits %#x of Events are outside MaskAll", uint32(c.Events&^MaskAll)))
	}
	if c.Buffer < 0 {
		errs = append(errs, fmt.Errorf("negative Buffer %d", c.Buffer))
	}
	if c.ReadBuffer < 0 {
		errs = append(errs, fmt.Errorf("negative ReadBuffer %d", c.ReadBuffer))
	}
	if c.Probe != nil {
		if err := c.Probe.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("in Probe: %w", err))
		}
		if c.Probe.GiveUpAfter == 0 {
			errs = append(errs, errors.New("zero Probe.GiveUpAfter: a kernel that never answers would hang Listen (set a budget; the context can end it sooner)"))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("cnlink/proc: invalid Config: %w", errors.Join(errs...))
}

// Stats are a Monitor's cumulative counters.
type Stats struct {
	// Received counts events decoded from the kernel, answers to
	// subscription requests included.
	Received uint64
	// Delivered counts events and loss reports put into the event
	// buffer for the application.
	Delivered uint64
	// Filtered counts events received but not selected by Config.Events.
	Filtered uint64
	// Missed, Overruns and Dropped are the totals of the Loss reports
	// (whether or not the application has read them yet).
	Missed, Overruns, Dropped uint64
	// Rejected counts datagrams and messages that did not come from the
	// kernel's proc connector: sent from a user port, to another group,
	// or to another connector id. They are never delivered.
	Rejected uint64
	// Malformed counts messages from the kernel that could not be
	// decoded (too short, truncated, not NLMSG_DONE).
	Malformed uint64
	// Unknown counts delivered events of KindUnknown.
	Unknown uint64
	// ReadBuffer is the receive buffer size last requested, in bytes
	// (what SO_RCVBUF was set to; the kernel reports twice that). Zero
	// when the transport does not say.
	ReadBuffer int
}
