package transport

import "math/bits"

// The kernel charges every queued datagram its skb truesize against the
// receiver's sk_rcvbuf, not its length. These constants reproduce the
// values measured on Linux 6.18/x86_64 (SO_MEMINFO rmem_alloc before and
// after one datagram; see Truesize). They matter because they decide how
// many datagrams fit in a queue: at the default 212992 bytes, 256 small
// datagrams, not 3000.
const (
	// skbStruct is SKB_DATA_ALIGN(sizeof(struct sk_buff)).
	skbStruct = 256
	// skbShinfo is SKB_DATA_ALIGN(sizeof(struct skb_shared_info)).
	skbShinfo = 320
	// skbSmallHead is SKB_SMALL_HEAD_CACHE_SIZE: heads up to this size come
	// from a dedicated slab, so every small datagram costs the same 832.
	skbSmallHead = 576
	// nlmsgGoodSize is NLMSG_GOODSIZE (a page minus skb_shared_info).
	// Larger unicast datagrams get an exact-size vmalloc'ed head instead
	// of a power-of-two kmalloc one.
	nlmsgGoodSize = 3776
	// cacheLine is SMP_CACHE_BYTES, the SKB_DATA_ALIGN unit.
	cacheLine = 64
)

// Truesize is what the kernel charges a receive queue for one datagram of
// n bytes: the skb's truesize. A queue takes a datagram when it is empty or
// when the charges, this one included, stay within its SO_RCVBUF (as
// getsockopt reports it: twice what was set). multicast is true for
// datagrams sent with a group in the address and for kernel-originated
// ones, which the kernel always allocates from kmalloc (power-of-two
// heads); user unicasts larger than NLMSG_GOODSIZE get an exact-size head
// instead.
//
// Measured on Linux 6.18 (x86_64): 0..256 bytes cost 832; 257..704 cost
// 1280; 705..1728 cost 2304; 1729..3776 cost 4352; a 20000-byte unicast
// costs 20608 and the same multicast 33024.
func Truesize(n int, multicast bool) int {
	d := (n + cacheLine - 1) &^ (cacheLine - 1)
	if !multicast && n > nlmsgGoodSize {
		return d + skbShinfo + skbStruct
	}
	head := d + skbShinfo
	if head <= skbSmallHead {
		return skbSmallHead + skbStruct
	}
	return 1<<bits.Len(uint(head-1)) + skbStruct
}
