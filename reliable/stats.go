package reliable

import "sync/atomic"

// rejectReason says why a received datagram or frame was dropped.
type rejectReason int

const (
	rejectMalformed    rejectReason = iota // undecodable netlink, cn_msg or cnlink header
	rejectChecksum                         // CRC32C mismatch (corruption)
	rejectNoSession                        // no session for (port, channel)
	rejectEpoch                            // wrong epoch: squatter, restarted peer, stale frame
	rejectState                            // frame not valid in the session's state
	rejectWindow                           // DSN beyond the receive window
	rejectTooLarge                         // message above MaxMessage
	rejectTruncated                        // datagram larger than MaxDatagram
	rejectMulticast                        // arrived on a multicast group
	rejectCreds                            // AllowCreds said no
	rejectRefused                          // SYN refused (backlog full or not accepting)
	rejectLateReply                        // reply for a request nobody waits for
	rejectCredsChanged                     // the session's port now sends with other credentials
	numRejectReasons
)

var rejectNames = [numRejectReasons]string{
	"malformed", "checksum", "no_session", "epoch", "state", "window",
	"too_large", "truncated", "multicast", "credentials", "refused", "late_reply",
	"credentials_changed",
}

func (r rejectReason) String() string { return rejectNames[r] }

type endpointStats struct {
	datagramsSent, datagramsRecv, bytesSent atomic.Uint64
	eagain, sendErrors, overruns            atomic.Uint64
	spurious, undelivered                   atomic.Uint64
	rstSent, rstSuppressed                  atomic.Uint64
	rejected                                [numRejectReasons]atomic.Uint64
}

// Stats are an endpoint's counters since it was created.
type Stats struct {
	DatagramsSent, DatagramsReceived uint64
	BytesSent                        uint64
	PeerBusy                         uint64 // sends that met a full peer (EAGAIN)
	SendErrors                       uint64
	Overruns                         uint64 // ENOBUFS reports from the transport
	SpuriousRetransmits              uint64
	Undelivered                      uint64 // received messages dropped because the application abandoned their session
	// ResetsSent counts RSTs answering frames of unknown or ended sessions
	// (also in DatagramsSent); ResetsSuppressed those the rate limit (1000
	// a second per endpoint) held back.
	ResetsSent, ResetsSuppressed uint64
	// Rejected counts dropped datagrams and frames by reason:
	//   malformed            undecodable netlink, cn_msg or cnlink header, or an invalid SYN
	//   checksum             CRC-32C mismatch (corruption)
	//   no_session           no session for the (port, channel)
	//   epoch                wrong epoch: a stale frame, a restarted peer, a forger
	//   state                not valid in the session's state (also ACKs of unsent DSNs)
	//   window               beyond the advertised receive window
	//   too_large            a message above MaxMessage
	//   truncated            a datagram larger than MaxDatagram
	//   multicast            arrived on a multicast group
	//   credentials          Config.AllowCreds refused the sender
	//   refused              a SYN refused (backlog full, or not accepting)
	//   late_reply           a reply whose Request gave up
	//   credentials_changed  the session's port sent with other credentials than
	//                        at the handshake: the port changed hands
	Rejected map[string]uint64
}

// Stats returns a snapshot of the endpoint's counters.
func (e *Endpoint) Stats() Stats {
	st := Stats{
		DatagramsSent:       e.stats.datagramsSent.Load(),
		DatagramsReceived:   e.stats.datagramsRecv.Load(),
		BytesSent:           e.stats.bytesSent.Load(),
		PeerBusy:            e.stats.eagain.Load(),
		SendErrors:          e.stats.sendErrors.Load(),
		Overruns:            e.stats.overruns.Load(),
		SpuriousRetransmits: e.stats.spurious.Load(),
		Undelivered:         e.stats.undelivered.Load(),
		ResetsSent:          e.stats.rstSent.Load(),
		ResetsSuppressed:    e.stats.rstSuppressed.Load(),
		Rejected:            make(map[string]uint64),
	}
	for i := range e.stats.rejected {
		if n := e.stats.rejected[i].Load(); n > 0 {
			st.Rejected[rejectReason(i).String()] = n
		}
	}
	return st
}

func (e *Endpoint) reject(r rejectReason) {
	e.stats.rejected[r].Add(1)
}
