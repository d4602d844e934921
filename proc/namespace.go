package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The inode numbers of the initial user and pid namespaces, fixed by the
// kernel since Linux 3.8 (PROC_USER_INIT_INO and PROC_PID_INIT_INO in
// include/linux/proc_ns.h): /proc/self/ns/user of a process in the
// initial user namespace reads "user:[4026531837]".
const (
	initUserNSInode = 0xEFFFFFFD
	initPIDNSInode  = 0xEFFFFFFC
)

// NamespaceError is Listen's error when the process is outside the
// initial user or pid namespace, where cn_proc ignores subscription
// requests (cn_proc_mcast_ctl returns without an answer). Listen detects
// it from /proc/self/ns before sending anything, instead of waiting out
// its probe budget. It matches ErrNotInitialNamespace and, because that
// is what Listen returned for this case before it detected it,
// ErrNoAnswer.
type NamespaceError struct {
	// Namespace is "user" or "pid"; Link is what /proc/self/ns/<Namespace>
	// reads, e.g. "user:[4026532177]".
	Namespace, Link string
}

func (e *NamespaceError) Error() string {
	return fmt.Sprintf("cnlink/proc: this process is outside the initial %s namespace (%s): "+
		"the kernel ignores proc connector subscriptions from containers and other namespaces", e.Namespace, e.Link)
}

// Unwrap returns ErrNotInitialNamespace and ErrNoAnswer.
func (e *NamespaceError) Unwrap() []error { return []error{ErrNotInitialNamespace, ErrNoAnswer} }

// checkNamespaces returns a *NamespaceError when root/self/ns/user or
// root/self/ns/pid names another namespace than the initial one, and nil
// when both are the initial ones or cannot be read (no /proc, an
// unexpected format): then the subscription itself finds out, the slow
// way.
func checkNamespaces(root string) error {
	for _, ns := range []struct {
		name  string
		inode uint64
	}{{"user", initUserNSInode}, {"pid", initPIDNSInode}} {
		link, err := os.Readlink(filepath.Join(root, "self", "ns", ns.name))
		if err != nil {
			continue
		}
		ino, ok := parseNSLink(link, ns.name)
		if ok && ino != ns.inode {
			return &NamespaceError{Namespace: ns.name, Link: link}
		}
	}
	return nil
}

// parseNSLink parses a namespace link such as "user:[4026531837]".
func parseNSLink(link, name string) (uint64, bool) {
	s, ok := strings.CutPrefix(link, name+":[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	ino, err := strconv.ParseUint(s, 10, 64)
	return ino, err == nil
}
