package proxy

import (
	"net/http"
	"strconv"

	"fronttier/internal/route"
)

// bucketCookieAge is how long a client keeps its canary bucket: a year,
// so that it stays on its side of every split until a release is over.
const bucketCookieAge = "31536000"

// bucketCookie is the Set-Cookie line that gives a new client its canary
// bucket: host-only, every path, hidden from scripts, sent on top-level
// navigation from other sites (Lax), Secure over HTTPS.
func bucketCookie(bucket int, r *http.Request) string {
	c := route.BucketCookie + "=" + strconv.Itoa(bucket) + "; Path=/; Max-Age=" + bucketCookieAge + "; HttpOnly; SameSite=Lax"
	if r.TLS != nil {
		c += "; Secure"
	}
	return c
}

// affinityCookie is the Set-Cookie line that pins a client to the backend
// whose balance.AffinityKey is key, for the browser session: a backend's
// sessions rarely outlive it.
func affinityCookie(key string, r *http.Request) string {
	c := route.AffinityCookie + "=" + key + "; Path=/; HttpOnly; SameSite=Lax"
	if r.TLS != nil {
		c += "; Secure"
	}
	return c
}
