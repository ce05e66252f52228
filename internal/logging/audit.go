package logging

import "io"

// OpenAuditLog opens the management API's audit log at path: a file of
// its own, appended to and rotated as o's rotation fields say (the
// [logging] section's, shared with the process and access logs), whose
// parent directory is created if missing. Each Write is appended whole, so
// concurrent writers of one line each never interleave. Close it when the
// API is gone; writes after Close fail.
func OpenAuditLog(path string, o Options) (io.WriteCloser, error) {
	return openRotating(path, o)
}
