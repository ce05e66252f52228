package h2guard

import (
	"encoding/binary"
	"slices"
	"testing"

	"golang.org/x/net/http2"
)

// entries returns the SETTINGS payload of the id, value pairs.
func entries(kv ...uint32) []byte {
	var p []byte
	for i := 0; i < len(kv); i += 2 {
		p = binary.BigEndian.AppendUint16(p, uint16(kv[i]))
		p = binary.BigEndian.AppendUint32(p, kv[i+1])
	}
	return p
}

func TestDedupe(t *testing.T) {
	t.Parallel()
	const (
		push   = uint32(http2.SettingEnablePush)
		window = uint32(http2.SettingInitialWindowSize)
		frame  = uint32(http2.SettingMaxFrameSize)
		prio   = uint32(http2.SettingNoRFC7540Priorities)
		other  = 0x77
	)
	tests := []struct {
		name string
		in   []byte
		want []byte
	}{
		{name: "empty", in: entries(), want: entries()},
		{name: "no duplicates", in: entries(window, 1, push, 0, other, 5), want: entries(window, 1, push, 0, other, 5)},
		{name: "last wins", in: entries(window, 100, window, 1), want: entries(window, 1)},
		{name: "last wins, order kept", in: entries(window, 100, push, 0, window, 1, other, 3, other, 4),
			want: entries(push, 0, window, 1, other, 4)},
		{name: "invalid kept over later valid", in: entries(window, 1<<31, window, 1), want: entries(window, 1<<31)},
		{name: "invalid kept over earlier valid", in: entries(window, 1, window, 1<<31), want: entries(window, 1<<31)},
		{name: "first invalid kept", in: entries(push, 2, push, 3, push, 1), want: entries(push, 2)},
		{name: "frame size", in: entries(frame, 1<<24, frame, 1<<14), want: entries(frame, 1<<24)},
		{name: "priorities", in: entries(prio, 2, prio, 1), want: entries(prio, 2)},
		{name: "invalid keeps its place", in: entries(window, 1, push, 5, window, 1<<31), want: entries(push, 5, window, 1<<31)},
		{name: "unknown values are valid", in: entries(other, 1<<31, other, 7), want: entries(other, 7)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := slices.Clone(tt.in)
			if n := dedupe(p); !slices.Equal(p[:n], tt.want) {
				t.Errorf("dedupe = %x, want %x", p[:n], tt.want)
			}
		})
	}
}
