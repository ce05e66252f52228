package h2guard

import (
	"encoding/binary"

	"golang.org/x/net/http2"
)

// SETTINGS payload layout (RFC 9113 6.5.1).
const (
	settingLen = 6 // identifier(2) value(4)
	// maxSettings is the most entries a screened SETTINGS frame may
	// have: Go's server refuses a frame with more, and so it still does.
	maxSettings = 100
)

// dedupe rewrites the SETTINGS payload p, a whole number of entries and at
// most maxSettings of them, to one entry per parameter, and returns its new
// length. RFC 9113 6.5.3 processes the values in order, so the entry kept
// is the one that decides the outcome: the first invalid value (6.5.2) when
// there is one, so that the server raises the error processing in order
// would; otherwise the last value. Kept entries stay in their order.
func dedupe(p []byte) int {
	n := len(p) / settingLen
	var keep [maxSettings]bool
	for i := range n {
		keep[i] = decisive(p, n, i)
	}
	w := 0
	for i := range n {
		if keep[i] {
			copy(p[w*settingLen:], p[i*settingLen:(i+1)*settingLen])
			w++
		}
	}
	return w * settingLen
}

// decisive reports whether entry i of the n in p decides its parameter's
// outcome.
func decisive(p []byte, n, i int) bool {
	id, ok := setting(p, i)
	for j := range n {
		if idj, okj := setting(p, j); j == i || idj != id {
			continue
		} else if !okj {
			if j < i || ok {
				return false // an earlier invalid value, or any over a valid one
			}
		} else if j > i && ok {
			return false // a later valid value over a valid one
		}
	}
	return true
}

// setting returns the identifier of entry i of p and whether its value is
// valid for the server.
func setting(p []byte, i int) (uint16, bool) {
	e := p[i*settingLen:]
	s := http2.Setting{
		ID:  http2.SettingID(binary.BigEndian.Uint16(e)),
		Val: binary.BigEndian.Uint32(e[2:]),
	}
	if s.ID == http2.SettingNoRFC7540Priorities && s.Val > 1 {
		return uint16(s.ID), false // refused by the server, not by Valid
	}
	return uint16(s.ID), s.Valid() == nil
}
