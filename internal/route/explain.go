package route

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
)

// Explain says in words why Decide placed r as d: "override header
// X-Canary=1", "canary bucket 412 < threshold 1000 (10%); bucket from
// cookie fronttier_bucket", "stable: bucket 5120 >= threshold 1000 (10%);
// ...", "no canary". It is for operators (the explain endpoint), not the
// data path: it allocates.
func (h *Host) Explain(r *http.Request, d Decision) string {
	s := h.Split
	switch d.Cause {
	case CauseOverride:
		o := &s.Overrides[d.Override]
		return fmt.Sprintf("override %s %s=%s", o.Kind, o.Name, o.Value)
	case CauseStable:
		if s == nil || s.Canary == nil {
			return "no canary"
		}
		return fmt.Sprintf("stable: canary %s at %s", s.CanaryTag, percent(s.Percent))
	case CauseCanary:
		if d.Bucket < 0 {
			return fmt.Sprintf("canary %s at %s", s.CanaryTag, percent(s.Percent))
		}
		return fmt.Sprintf("canary bucket %d < threshold %d (%s); %s", d.Bucket, s.Threshold, percent(s.Percent), s.source(r, d.Source))
	}
	return fmt.Sprintf("stable: bucket %d >= threshold %d (%s); %s", d.Bucket, s.Threshold, percent(s.Percent), s.source(r, d.Source))
}

// source says where a bucket came from.
func (s *Split) source(r *http.Request, src Source) string {
	switch src {
	case SourceCookie:
		return "bucket from cookie " + BucketCookie
	case SourceNew:
		return "a new client (no valid " + BucketCookie + " cookie): a new bucket, set in that cookie"
	case SourceHeader:
		return "bucket from header " + s.Header
	case SourceSpread:
		return "sticky by none: a bucket for this request alone"
	}
	ip := clientAddr(r.RemoteAddr)
	if s.Key == KeyHeader {
		return fmt.Sprintf("bucket from client IP %s (no %s header)", ip, s.Header)
	}
	return "bucket from client IP " + ip
}

// clientAddr returns the address of a RemoteAddr, without its port.
func clientAddr(remoteAddr string) string {
	if host, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return host
	}
	return remoteAddr
}

// percent formats a share: "10%", "0.5%".
func percent(p float64) string { return strconv.FormatFloat(p, 'f', -1, 64) + "%" }

// String names the kind as the configuration does.
func (k MatchKind) String() string {
	switch k {
	case MatchHeader:
		return "header"
	case MatchCookie:
		return "cookie"
	case MatchQuery:
		return "query"
	}
	return "unknown"
}
