package torture

import (
	"context"
	"errors"

	"github.com/cnlink/cnlink/reliable"
)

// Errors: every error any call returns must match one of the sentinels
// the contract documents (/work/notes/semantics.md, "Errors"), or be the
// context's own error.

var sentinels = []error{
	reliable.ErrClosed,
	reliable.ErrAborted,
	reliable.ErrPeerClosed,
	reliable.ErrPeerGone,
	reliable.ErrPeerReset,
	reliable.ErrTimeout,
	reliable.ErrMessageTooLarge,
	reliable.ErrPermission,
	reliable.ErrTransport,
	reliable.ErrSessionExists,
	reliable.ErrNotAccepting,
	context.Canceled,
	context.DeadlineExceeded,
}

func documented(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func isTimeout(err error) bool  { return errors.Is(err, reliable.ErrTimeout) }
func isDeadline(err error) bool { return errors.Is(err, context.DeadlineExceeded) }

// checkErr reports an undocumented error returned to side sd by call.
func (r *runState) checkErr(sd *sideRun, call string, err error) {
	if err != nil && !documented(err) {
		r.violate(4, "error/undocumented", "%v: %s returned %q (%T), which matches no documented sentinel", sd, call, err, err)
	}
}

func (r *runState) checkErrAt(at, call string, err error) {
	if err != nil && !documented(err) {
		r.violate(4, "error/undocumented", "%s: %s returned %q (%T), which matches no documented sentinel", at, call, err, err)
	}
}

// checkEnd checks the error a side's session ended with, and what its own
// Abort and Close imply about it.
func (r *runState) checkEnd(sd *sideRun) {
	err := sd.endErr
	var se *reliable.SessionError
	switch {
	case err == nil:
		r.violate(4, "end/no-error", "%v: Done is closed but Err() is nil", sd)
		return
	case !documented(err):
		r.violate(4, "error/undocumented", "%v: the session ended with %q, which matches no documented sentinel", sd, err)
	case !errors.As(err, &se):
		r.violate(4, "end/not-session-error", "%v: the session ended with %q (%T), not a *reliable.SessionError", sd, err, err)
	}
	sd.mu.Lock()
	defer sd.mu.Unlock()
	// Only Abort was done locally and the session ended as closed locally:
	// the end is the Abort's, so it must say so.
	if sd.aborted && !sd.closed && !sd.epClosed && errors.Is(err, reliable.ErrClosed) && !errors.Is(err, reliable.ErrAborted) {
		r.violate(4, "end/abort-not-aborted", "%v: aborted, and Err() = %q matches ErrClosed but not ErrAborted", sd, err)
	}
	for k, cerr := range sd.closeResults {
		if cerr == nil {
			if errors.Is(err, reliable.ErrAborted) && !sd.aborted {
				r.violate(4, "end/close-nil-aborted", "%v: Close returned nil but Err() = %q matches ErrAborted", sd, err)
			}
			if !errors.Is(err, reliable.ErrClosed) && !errors.Is(err, reliable.ErrPeerClosed) {
				r.violate(4, "end/close-nil-kind", "%v: Close returned nil but the session ended with %q", sd, err)
			}
		} else {
			var cse *reliable.SessionError
			if !errors.As(cerr, &cse) {
				r.violate(4, "end/close-not-session-error", "%v: Close returned %q (%T), not a *reliable.SessionError", sd, cerr, cerr)
			}
		}
		if k > 0 && !sameResult(sd.closeResults[0], cerr) {
			r.violate(4, "end/close-twice", "%v: Close returned %v, then %v", sd, sd.closeResults[0], cerr)
		}
	}
}

// sameResult: both nil, or errors of the same kind.
func sameResult(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	for _, s := range sentinels {
		if errors.Is(a, s) != errors.Is(b, s) {
			return false
		}
	}
	return true
}
