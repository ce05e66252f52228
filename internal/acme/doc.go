// Package acme obtains and renews certificates from an ACME certificate
// authority (Let's Encrypt, or any RFC 8555 server: ZeroSSL, step-ca, Pebble)
// for the domains fronttier manages, answers the CA's HTTP-01 and TLS-ALPN-01
// challenges, and hands every certificate and status change to an Installer
// (internal/certs).
//
// # Library
//
// The protocol is spoken by github.com/mholt/acmez/v3, the ACME engine that
// certmagic (and so every Caddy server) is built on. It brings the parts that
// are hard to get right and that we do not want to own: anti-replay nonces and
// badNonce retries, retries of network and 5xx errors, order and authorization
// polling that honours Retry-After, falling back from one challenge type to the
// other when validation fails, ACME Renewal Information (ARI, RFC 9773) and the
// "replaces" field of renewal orders. It logs through log/slog, so its records
// carry our logger's attributes.
//
// certmagic itself was not used: its management layer runs on package-level
// state (a global job queue and retry schedule, a global map of active
// challenges, global rate limiters and default config and logger, zap), starts
// goroutines no context owns, measures the renewal window as a fraction of the
// lifetime instead of the manual's "N days before expiry", and its retry
// intervals cannot be changed. Bending it to the API below (synchronous load
// from the cache, per-domain status, removal that stops renewal at once, our
// own metrics) would have meant working around it everywhere.
// golang.org/x/crypto/acme was not used because it has no ARI and leaves the
// order flow, challenge fallback and retries to the caller.
//
// What this package adds is what is specific to fronttier: the managed set of
// domains, the cache layout, the schedule, statuses, logs and metrics.
//
// # Schedule
//
// A new domain is issued a certificate at once. A certificate is due for
// renewal when the smaller of RenewBefore and a third of its lifetime
// remains (a 90-day certificate renews 30 days before expiry by default, a
// 24-hour one 8 hours before, a 6-day one 2 days before), or earlier at the
// time the CA's renewal information (ARI, RFC 9773) selects. Each domain's
// goroutine sleeps until the earliest of that time, the CA's Retry-After for
// its renewal information (at least a minute away) and RenewalCheck from
// now, which is only a backstop. A failed attempt is retried after a
// backoff that doubles from one minute to an hour, but never waits more
// than a quarter of the time the served certificate has left, so several
// attempts fit before it expires. A certificate that is due as soon as it
// is issued (only ARI or a clock far ahead of the CA's can do that) waits a
// retry interval: renewal never loops.
//
// # Goroutines
//
// Run owns one goroutine per managed domain, each with a context derived from
// Run's; removing a domain in Sync cancels its context, which aborts an order
// in flight and ends its renewal checks.
//
// # Fairness and rate limits
//
// Each domain orders on its own: nothing is held while the CA validates, so
// a domain whose validation hangs (its name points elsewhere, a firewall
// drops the CA) delays no other, and a failing domain backs off on its own
// schedule. The one shared limit is a token bucket on the newOrder requests
// sent to the CA, counted at the HTTP transport so that the further orders
// acmez makes within one attempt (the other challenge type after a failed
// validation) count too: 300 at once, then one every 36 seconds, which is
// Let's Encrypt's "new orders per account" limit (300 per 3 hours). An
// attempt takes its token before its order timeout starts, so waiting for
// the limit never makes an order time out. Let's Encrypt's other limits are
// per name: renewal happens once per certificate, which keeps the
// certificates-per-domain and duplicate-certificate limits; a name that
// keeps failing validation can reach the failed-validations limit (5 per
// hostname per hour), after which the CA refuses its orders (rateLimited)
// until it refills: more failures for that name only, whose backoff grows
// to an hour.
//
// # Orders
//
// Every order uses a new key: ECDSA P-256 by default. Options.KeyTypes
// can ask for RSA 2048 too (or instead): each domain then has one
// certificate per key type (a unit, see unitKey), each ordered, cached and
// renewed on its own schedule, and reported to the Installer with its key
// type; a TLS server serves ECDSA to every client that supports it and RSA
// to the others (internal/certs). The units of one name order one at a
// time (and in a fleet under the name's one order lock), since the CA's
// TLS-ALPN-01 handshake names the domain, not the order. Options.Profile names the certificate
// profile to order (draft-ietf-acme-profiles) when the CA's directory offers
// it, else the CA's default is ordered and a warning logged once. When the
// CA offers alternate chains (RFC 8555 §7.4.2 "alternate" links),
// Options.PreferredChain picks the first chain holding a certificate with
// that common name or ending at a root of that name; with no match the CA's
// default chain is served and a warning logged. A renewal names the
// certificate it replaces (ARI "replaces") when the CA has renewal
// information for it. Renew orders a new certificate at once, outside the
// schedule and its backoff; a failed forced renewal is retried like a due
// one until it succeeds.
//
// # Cache
//
// CacheDir holds, per CA (<ca> is the ACME directory URL's host and path
// with other characters than [A-Za-z0-9._@+-] replaced by "-", e.g.
// acme-v02.api.letsencrypt.org-directory, so that staging and production
// certificates never mix):
//
//	accounts/<ca>/<email or "default">/account.json   account URL and status
//	accounts/<ca>/<email or "default">/account.key    account key (PKCS #8 PEM)
//	certificates/<ca>/<domain>/<domain>.crt            served chain, leaf first (PEM)
//	certificates/<ca>/<domain>/<domain>.key            private key (PKCS #8 PEM)
//	certificates/<ca>/<domain>/<domain>.json           metadata: serial, expiry, order URL, ARI window
//	certificates/<ca>/<domain>/<domain>+rsa.crt        the same three for the RSA certificate, with
//	                                                   Options.KeyTypes including "rsa"
//
// The email is lower-cased. Files are written atomically with mode 0600;
// directories are created 0700, on the first write (a proxy without ACME
// domains leaves no trace). A certificate is loaded from the cache at
// start when it covers the domain and has not expired; otherwise a new one
// is ordered. Removing a domain keeps its files.
// The store assumes one fronttier process per CacheDir; a fleet shares
// its certificates through etcd instead (below).
//
// # Fleet
//
// With Options.Fleet, the nodes of a fleet share ACME through etcd: the
// account, the certificates and their keys live there, one node at a time
// orders a given domain, and whichever node the CA reaches answers its
// challenges. Every node should have the same ACME settings (directory,
// e-mail). Keys, under the fleet's prefix ({prefix}, e.g. /fronttier;
// <ca> and the e-mail as in the cache above):
//
//	{prefix}/acme/accounts/<ca>/<email or "default">  {"account": {...}, "key": "<PKCS #8 PEM>"}
//	{prefix}/acme/certificates/<ca>/<domain>           {"chain": "<PEM>", "key": "<PKCS #8 PEM>", "meta": {...}}
//	{prefix}/acme/certificates/<ca>/<domain>+rsa       the same for the RSA certificate
//	{prefix}/acme/attempts/<ca>/<domain>[+rsa]         the fleet's failed attempts since the last certificate:
//	                                                   {"failures", "retry_at", "node", "error"}
//	{prefix}/acme/challenges/http-01/<token>           key authorization, under the presenting node's lease
//	{prefix}/acme/challenges/tls-alpn-01/<domain>      key authorization, under the presenting node's lease
//	{prefix}/locks/acme/<domain>/<lease>               the domain's order lock (an etcd mutex), for
//	                                                   every key type
//
// etcd then holds the account key and every certificate's private key,
// in clear: protect it as a key store. Use TLS to etcd with client
// certificates or authentication, give fronttier's etcd user access to
// the prefix alone, and keep etcd's data directory and backups private.
//
// Each node has an etcd session: a lease (30 seconds) kept alive while
// Run runs, revoked when it ends, and expiring when the node dies. A
// domain's order lock is an etcd mutex on that session. A node whose
// schedule finds a certificate due takes the lock without waiting; when
// another node holds it, it does not order but checks again later (after
// the retry backoff) and installs the certificate when it appears. Having
// the lock, it reads the fleet's certificate and failed attempts again
// (another node may have renewed it, or failed, meanwhile): it installs a
// newer certificate and orders only if one is still due and the fleet's
// retry time has come (Renew and Reload's checks skip that wait, as they
// skip this node's backoff). A failed order is recorded for the fleet, so
// that the backoff is the fleet's: the next attempt, on whichever node,
// waits for it. A successful one writes the certificate and clears the
// failures; the lock is released after either. So a certificate is
// ordered and renewed once per fleet, and a node that dies while
// ordering frees the domain when its lease expires.
//
// Every node watches {prefix}/acme/certificates/<ca>/ and installs, as a
// renewal of its own would be, each certificate written there for a
// domain it manages that does not expire before the one it serves (a
// certificate it serves already only brings its metadata: the CA's
// renewal information another node fetched). The new certificate counts
// as the renewal Renew asked for. Certificates deleted from etcd stay
// served.
//
// Challenge answers are written, by the node presenting them, under its
// session's lease, and removed at clean-up; a node's HTTP-01 responder
// and ALPN look in their own answers first, then in etcd (a linearizable
// read, since the answer was written just before the CA was told to look,
// maybe through another member). The TLS-ALPN-01 certificate is built
// from the key authorization by whichever node the CA reaches.
//
// The first account registered stays the fleet's: a node that registers
// at the same time as another uses the account etcd kept. A node joining
// a fleet from single-node mode brings its cached account and
// certificates when etcd has none.
//
// CacheDir holds a copy of the certificates and keys of the domains the
// node serves (never the account), refreshed from etcd, and read only
// when etcd cannot be reached. When etcd cannot be reached, nodes keep
// serving the certificates they have, and one that starts reads them
// from its copy (after one request to etcd times out); no order is made,
// since none is made without the lock (the attempt fails and is retried
// with backoff); renewal resumes when etcd is back, and the watch catches
// up with the certificates written meanwhile. A certificate obtained
// while etcd became unreachable is served by the node that ordered it
// but not shared, and may be ordered again by the fleet when due. The
// order rate limit is counted by each node.
package acme
