package proc

import (
	"os"
	"strconv"
)

// readComm reads root/PID/comm (the command name, at most 15 bytes and a
// newline) into dst and reports whether it could. It is on the reader's
// path, once per exec event: one open, one read, one close.
func readComm(root string, pid int, dst *[CommLen]byte) bool {
	if pid <= 0 {
		return false
	}
	var pb [48]byte
	p := append(pb[:0], root...)
	p = append(p, '/')
	p = strconv.AppendInt(p, int64(pid), 10)
	p = append(p, "/comm"...)
	f, err := os.Open(string(p))
	if err != nil {
		return false // gone already, or no /proc
	}
	var b [CommLen + 1]byte
	n, err := f.Read(b[:])
	f.Close()
	if err != nil || n == 0 {
		return false
	}
	if b[n-1] == '\n' {
		n--
	}
	*dst = [CommLen]byte{}
	copy(dst[:], b[:n])
	return true
}
