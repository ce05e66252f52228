package proxy

import (
	"errors"
	"io"
	"net/http"
	"strings"
)

// respond copies the backend's answer to the client (its end-to-end
// header fields are already in w's header), then returns the connection to
// the pool when the exchange ended cleanly. An answer cut short by the
// backend is marked aborted, so the client sees a broken answer rather
// than a complete-looking short one; one cut by the client is noted.
func (u *Upstream) respond(w http.ResponseWriter, r *http.Request, ex *exchange) {
	head, pc := ex.head, ex.pc
	if head.status == http.StatusSwitchingProtocols {
		u.upgrade(w, r, ex)
		return
	}
	hdr := w.Header()
	if head.trailer != "" {
		hdr["Trailer"] = []string{head.trailer}
	}
	w.WriteHeader(head.status)

	clean, err := u.copyBody(w, pc, head, head.body(pc.br))
	if clean && head.chunked {
		if terr := pc.hp.readTrailer(pc.br, head.trailer, hdr); terr != nil {
			clean, err = false, terr
		}
	}
	if ex.bodyErr != nil {
		select {
		case berr := <-ex.bodyErr:
			if berr != nil {
				clean = false // the backend answered before taking the whole body
			}
		default:
			// An early answer (a 401 or 413 to a large upload): it is
			// complete, so the client gets it now. The rest of the upload
			// is not the backend's any more: closing its connection ends
			// the writer, which leaves on its own.
			clean = false
		}
	}
	// A client's Connection: close concerns its own connection only (it is
	// not forwarded): the backend's stays reusable.
	if clean && !head.close {
		u.put(pc)
	} else {
		pc.close()
	}
	if err != nil {
		u.cut(w, r, err)
	}
}

// cut notes an answer that broke off after its head: the client's doing
// (it left, or stopped reading), or the backend's (closed, stalled,
// malformed), which also aborts the client connection.
func (u *Upstream) cut(w http.ResponseWriter, r *http.Request, err error) {
	var cw *clientWriteError
	switch {
	case errors.As(err, &cw):
		setFailure(w, cw.failure(), err)
	case r.Context().Err() != nil:
		setFailure(w, FailClientClosed, err)
	default:
		abort(w, upstreamFailure(err), err)
	}
}

// setFailure notes why the answer was not delivered whole.
func setFailure(w http.ResponseWriter, f Failure, err error) {
	if rec, ok := w.(*recorder); ok {
		rec.fail, rec.err = f, err
	}
}

// abort marks the answer broken off: the backend failed mid-body. The
// Handler reports it, then aborts the client connection so the client sees
// a broken response rather than a complete-looking short one.
func abort(w http.ResponseWriter, f Failure, err error) {
	if rec, ok := w.(*recorder); ok {
		rec.fail, rec.err, rec.aborted = f, err, true
		return
	}
	panic(http.ErrAbortHandler)
}

// copyBody copies the body to w. Whenever the next read must wait on the
// backend, what the client could have now is flushed first: a backend
// that pauses mid-answer must not keep the head and the bytes it already
// sent from the client. clean reports whether the body was read to its
// end, so the connection can be reused.
func (u *Upstream) copyBody(w http.ResponseWriter, pc *pconn, head *respHead, body io.Reader) (clean bool, err error) {
	if head.length == 0 {
		return true, nil
	}
	buf := u.bufs.get()
	defer u.bufs.put(buf)
	fl, _ := w.(errFlusher)
	events := strings.HasPrefix(head.contentType, "text/event-stream")
	pending := true // the head, or bytes written since the last flush
	for {
		if pending && fl != nil && pc.br.Buffered() == 0 {
			if werr := fl.FlushError(); werr != nil {
				return false, &clientWriteError{werr}
			}
			pending = false
		}
		n, rerr := body.Read(*buf)
		if n > 0 {
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				return false, &clientWriteError{werr}
			}
			pending = true
			if events && fl != nil { // each event as it comes
				if werr := fl.FlushError(); werr != nil {
					return false, &clientWriteError{werr}
				}
				pending = false
			}
		}
		if rerr == io.EOF {
			return true, nil
		}
		if rerr != nil {
			return false, rerr
		}
	}
}
