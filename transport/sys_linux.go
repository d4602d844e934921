//go:build linux

package transport

import (
	"math/bits"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Raw system calls for the data path. x/sys/unix's Sendto and Recvmsg take
// and return unix.Sockaddr interfaces, which allocate on every call; these
// work on caller-owned raw structures instead so that a datagram costs no
// allocation. Callers keep every pointed-to object reachable from a heap
// struct for the duration of the call.

// sendto sends b to the raw address sa without blocking. It retries EINTR
// itself; any other errno is returned as is.
func sendto(fd uintptr, b []byte, sa *unix.RawSockaddrNetlink) unix.Errno {
	for {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, fd,
			uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)),
			unix.MSG_DONTWAIT,
			uintptr(unsafe.Pointer(sa)), unix.SizeofSockaddrNetlink)
		if e != unix.EINTR {
			return e
		}
	}
}

// recvmsg receives one datagram into the buffers msg points at without
// blocking, retrying EINTR. It returns the byte count the kernel reported.
func recvmsg(fd uintptr, msg *unix.Msghdr) (int, unix.Errno) {
	for {
		n, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(msg)), unix.MSG_DONTWAIT)
		if e != unix.EINTR {
			return int(n), e
		}
	}
}

// groupMask converts a group number (1..32) to the sockaddr_nl.nl_groups
// bit the kernel expects on sendto; 0 means no group.
func groupMask(group uint32) uint32 {
	if group == 0 {
		return 0
	}
	return 1 << (group - 1)
}

// maskGroup converts a received sockaddr_nl.nl_groups (the kernel sets the
// one bit of the destination group of a multicast) back to the group
// number; 0 for unicast.
func maskGroup(mask uint32) uint32 {
	if mask == 0 {
		return 0
	}
	return uint32(bits.TrailingZeros32(mask)) + 1
}

// cmsgAlign rounds n up to the control-message alignment, sizeof(long).
func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}

// parseCreds finds SCM_CREDENTIALS among the control messages in oob
// without allocating (unix.ParseSocketControlMessage allocates). Fields are
// decoded from bytes, so oob needs no particular alignment.
func parseCreds(oob []byte) Creds {
	hdr := unix.SizeofCmsghdr
	for len(oob) >= hdr {
		var l int
		if hdr == 16 { // 64-bit: size_t cmsg_len
			l = int(ne.Uint64(oob))
		} else {
			l = int(ne.Uint32(oob))
		}
		if l < hdr || l > len(oob) {
			break
		}
		level := int32(ne.Uint32(oob[hdr-8:]))
		typ := int32(ne.Uint32(oob[hdr-4:]))
		data := cmsgAlign(hdr)
		if level == unix.SOL_SOCKET && typ == unix.SCM_CREDENTIALS && l >= data+unix.SizeofUcred {
			u := oob[data:]
			return Creds{
				PID:   ne.Uint32(u[0:]),
				UID:   ne.Uint32(u[4:]),
				GID:   ne.Uint32(u[8:]),
				Valid: true,
			}
		}
		next := cmsgAlign(l)
		if next >= len(oob) {
			break
		}
		oob = oob[next:]
	}
	return Creds{}
}
