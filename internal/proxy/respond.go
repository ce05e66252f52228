package proxy

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// respond copies the backend's answer to the client (its end-to-end
// header fields are already in w's header), then returns the connection to
// the pool when the exchange ended cleanly.
func (u *Upstream) respond(w http.ResponseWriter, r *http.Request, ex *exchange) {
	head := ex.head
	if head.status == http.StatusSwitchingProtocols {
		u.upgrade(w, r, ex)
		return
	}
	hdr := w.Header()
	if head.trailer != "" {
		hdr["Trailer"] = []string{head.trailer}
	}
	w.WriteHeader(head.status)

	clean, err := u.copyBody(w, head, head.body(ex.pc.br))
	if clean && head.chunked {
		if terr := ex.pc.hp.readTrailer(ex.pc.br, head.trailer, hdr); terr != nil {
			clean, err = false, terr
		}
	}
	if ex.bodyErr != nil {
		if berr := <-ex.bodyErr; berr != nil {
			clean = false // the backend answered before taking the whole body
		}
	}
	// A client's Connection: close concerns its own connection only (it is
	// not forwarded): the backend's stays reusable.
	if clean && !head.close {
		u.put(ex.pc)
	} else {
		ex.pc.close()
	}
	if err != nil && !errors.Is(err, errClientWrite) && r.Context().Err() == nil {
		u.log.Debug("backend failed while sending the body", "error", err)
		abort(w, err)
	}
}

// abort marks the answer broken off: the backend failed mid-body. The
// Handler reports it, then aborts the client connection so the client sees
// a broken response rather than a complete-looking short one.
func abort(w http.ResponseWriter, err error) {
	if rec, ok := w.(*recorder); ok {
		rec.err, rec.aborted = err, true
		return
	}
	panic(http.ErrAbortHandler)
}

// errClientWrite marks a failure to write to the client (who left).
var errClientWrite = errors.New("write to client")

// copyBody copies resp's body to w, flushing as it goes for streams
// (server-sent events, bodies of unknown length). clean reports whether the
// body was read to its end, so the connection can be reused.
func (u *Upstream) copyBody(w http.ResponseWriter, head *respHead, body io.Reader) (clean bool, err error) {
	if head.length == 0 {
		return true, nil
	}
	buf := u.bufs.get()
	defer u.bufs.put(buf)
	stream := head.length < 0 || strings.HasPrefix(head.contentType, "text/event-stream")
	var rc *http.ResponseController
	if stream || u.o.SendTimeout > 0 {
		rc = http.NewResponseController(w)
	}
	var armed time.Time
	if u.o.SendTimeout > 0 {
		armed = time.Now()
	}
	for {
		n, rerr := body.Read(*buf)
		if n > 0 {
			// The Handler armed the send deadline when the request came;
			// a long answer re-arms it as it makes progress (nginx's
			// send_timeout), at most once a second.
			if u.o.SendTimeout > 0 {
				if now := time.Now(); now.Sub(armed) > time.Second {
					rc.SetWriteDeadline(now.Add(u.o.SendTimeout))
					armed = now
				}
			}
			if _, werr := w.Write((*buf)[:n]); werr != nil {
				return false, errClientWrite
			}
			if stream {
				if werr := rc.Flush(); werr != nil {
					return false, errClientWrite
				}
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
