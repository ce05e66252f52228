package proxy

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// respond copies the backend's answer to the client, then returns the
// connection to the pool when the exchange ended cleanly.
func (u *Upstream) respond(w http.ResponseWriter, r *http.Request, ex *exchange) {
	resp := ex.resp
	if resp.StatusCode == http.StatusSwitchingProtocols {
		u.upgrade(w, r, ex)
		return
	}
	hdr := w.Header()
	conn := connectionTokens(resp.Header)
	for k, vv := range resp.Header {
		if hopHeaders[k] || (conn != nil && listed(conn, k)) {
			continue
		}
		hdr[k] = vv
	}
	if len(resp.Trailer) > 0 {
		names := make([]string, 0, len(resp.Trailer))
		for k := range resp.Trailer {
			names = append(names, k)
		}
		hdr["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(resp.StatusCode)

	clean, err := u.copyBody(w, resp)
	if ex.bodyErr != nil {
		if berr := <-ex.bodyErr; berr != nil {
			clean = false // the backend answered before taking the whole body
		}
	}
	if clean && !resp.Close && !r.Close {
		u.put(ex.pc)
	} else {
		ex.pc.close()
	}
	for k, vv := range resp.Trailer {
		hdr[k] = vv
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
func (u *Upstream) copyBody(w http.ResponseWriter, resp *http.Response) (clean bool, err error) {
	body := resp.Body
	defer body.Close()
	if body == http.NoBody {
		return true, nil
	}
	buf := u.bufs.get()
	defer u.bufs.put(buf)
	stream := resp.ContentLength < 0 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	var rc *http.ResponseController
	if stream || u.o.SendTimeout > 0 {
		rc = http.NewResponseController(w)
	}
	armed := time.Now()
	for {
		n, rerr := body.Read(*buf)
		if n > 0 {
			// The Handler armed the send deadline when the request came;
			// a long answer re-arms it as it makes progress (nginx's
			// send_timeout), at most once a second.
			if now := time.Now(); u.o.SendTimeout > 0 && now.Sub(armed) > time.Second {
				rc.SetWriteDeadline(now.Add(u.o.SendTimeout))
				armed = now
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

// upgrade completes a protocol switch (WebSocket): it hands the client's
// connection over from the HTTP server, sends it the backend's 101 answer
// and then copies bytes both ways until either side closes.
func (u *Upstream) upgrade(w http.ResponseWriter, r *http.Request, ex *exchange) {
	resp, pc := ex.resp, ex.pc
	pc.ctx = nil // no watching: an upgraded connection lives on its own
	defer pc.close()
	want, got := upgradeType(r.Header), upgradeType(resp.Header)
	if want == "" || !strings.EqualFold(want, got) {
		recordError(w, r, errors.New("backend switched protocols without an upgrade request for it"))
		return
	}
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		recordError(w, r, err)
		return
	}
	defer client.Close()
	client.SetDeadline(time.Time{}) // an upgraded connection may idle for long
	conn := connectionTokens(resp.Header)
	for k := range resp.Header {
		if hopHeaders[k] || (conn != nil && listed(conn, k)) {
			delete(resp.Header, k)
		}
	}
	resp.Header.Set("Connection", "Upgrade")
	resp.Header.Set("Upgrade", got)
	resp.Body = nil
	if err := resp.Write(brw); err != nil {
		return
	}
	if err := brw.Flush(); err != nil {
		return
	}
	pc.c.SetDeadline(time.Time{})
	// Copy both ways; when either direction ends, close both connections
	// (the deferred Closes) so the other copy ends too.
	done := make(chan struct{}, 2)
	go func() { // client -> backend, including bytes the server buffered
		io.Copy(pc.c, brw.Reader)
		done <- struct{}{}
	}()
	go func() { // backend -> client, including bytes already read
		io.Copy(client, pc.br)
		done <- struct{}{}
	}()
	<-done
	client.Close()
	pc.close()
	<-done
}
