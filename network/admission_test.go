package network

import (
	"crypto/tls"
	"net"
	"slices"
	"testing"
	"time"
)

// loopbackPairs returns the server ends of n TCP connections over
// loopback, all from 127.0.0.1, closed when the test ends.
func loopbackPairs(t *testing.T, n int) []net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var out []net.Conn
	for range n {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte{0x16, 0x03}) // a byte for the ClientHello, one for after our answer
		t.Cleanup(func() { c.Close(); s.Close() })
		out = append(out, s)
	}
	return out
}

// Which connection a full address closes: the most stalled, one that has
// not sent a whole ClientHello before one that has, and of those the one
// that went longest without moving on; never the newcomer, nor one proven
// a friend's.
func TestAdmissionClosesStalledHandshakesFirst(t *testing.T) {
	id := newIdentity(t, "alice").ID
	other := newIdentity(t, "bob").ID
	type step struct {
		stage stage         // how far the connection gets once admitted
		idle  time.Duration // for how long it has not moved on
		prove *ID           // then proved with this identity
	}
	strangers := func(n int, s stage) []step { return slices.Repeat([]step{{stage: s}}, n) }
	cases := []struct {
		name  string
		steps []step
		want  []int // the connections closed, by index, in order
	}{
		{
			name:  "the oldest when all are alike",
			steps: strangers(maxUnauthenticatedPerHost+2, stageSilent),
			want:  []int{0, 1},
		},
		{
			name: "silent for longer before stuck in its ClientHello for less",
			steps: append(strangers(maxUnauthenticatedPerHost-1, stagePartial),
				step{stage: stageSilent, idle: time.Second}, step{stage: stagePartial}),
			want: []int{maxUnauthenticatedPerHost - 1},
		},
		{
			name: "stuck in its ClientHello for longer before silent for less",
			steps: append([]step{{stage: stageSilent}, {stage: stagePartial, idle: time.Second}},
				strangers(maxUnauthenticatedPerHost-1, stageSilent)...),
			want: []int{1},
		},
		{
			name:  "a friend's ClientHello outlasts any number of stalled ones",
			steps: append([]step{{stage: stageHello, idle: time.Hour}}, strangers(3*maxUnauthenticatedPerHost, stagePartial)...),
			want:  seq(1, 2*maxUnauthenticatedPerHost+2),
		},
		{
			name:  "the newcomer is never the one closed",
			steps: append(strangers(maxUnauthenticatedPerHost, stageAnswered), step{stage: stageSilent, idle: time.Hour}),
			want:  []int{0},
		},
		{
			name: "proven connections are never closed for strangers",
			steps: append([]step{{stage: stageAnswered, prove: &id, idle: time.Hour}, {stage: stageAnswered, prove: &other, idle: time.Hour}},
				strangers(2*maxUnauthenticatedPerHost, stageSilent)...),
			want: seq(2, maxUnauthenticatedPerHost+2),
		},
		{
			name:  "one identity keeps at most maxInboundPerFriend proven, the newest",
			steps: slices.Repeat([]step{{stage: stageAnswered, prove: &id}}, maxInboundPerFriend+2),
			want:  []int{0, 1},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a := newAdmission()
			conns := loopbackPairs(t, len(tc.steps))
			base := time.Now()
			var closed []int
			record := func(evicted []net.Conn) {
				for _, e := range evicted {
					closed = append(closed, slices.Index(conns, e))
				}
			}
			for i, st := range tc.steps {
				w, evicted := a.admit(conns[i])
				record(evicted)
				if st.stage >= stagePartial {
					w.Read(make([]byte, 1))
				}
				if st.stage >= stageHello {
					sawClientHello(&tls.ClientHelloInfo{Conn: w})
				}
				if st.stage >= stageAnswered {
					w.Write([]byte{0x16})
					w.Read(make([]byte, 1))
				}
				wc := w.(*watchedConn)
				if got := stage(wc.stage.Load()); got != st.stage {
					t.Fatalf("connection %d reached %v, want %v", i, got, st.stage)
				}
				// In order of arrival, less its idle time.
				wc.progress.Store(base.Add(time.Duration(i)*time.Microsecond - st.idle).UnixNano())
				if st.prove != nil {
					record(a.proved(conns[i], *st.prove))
				}
			}
			if !slices.Equal(closed, tc.want) {
				t.Errorf("closed %v, want %v", closed, tc.want)
			}
			for i, c := range conns {
				if tracked := a.done(c); tracked == slices.Contains(tc.want, i) {
					t.Errorf("connection %d: still tracked %v, want %v", i, tracked, !tracked)
				}
			}
		})
	}
}

// seq is lo, lo+1, ..., hi-1.
func seq(lo, hi int) []int {
	var out []int
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}
