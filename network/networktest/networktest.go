// Package networktest holds what p2pchat's tests share across packages, as
// net/http/httptest does for net/http: loopback ports that nothing else
// takes (FreePort), and the p2pchat command built once per test binary
// (RunWithBinary). Only tests import it.
package networktest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// RunWithBinary builds the p2pchat command, without the race detector
// whatever GOFLAGS says, into a temporary directory, sets *binary to its
// path, runs the tests and removes the directory. It returns the exit
// status for TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(networktest.RunWithBinary(m, &binary)) }
func RunWithBinary(m *testing.M, binary *string) int {
	dir, err := os.MkdirTemp("", "p2pchat-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	*binary = filepath.Join(dir, "p2pchat")
	if err := build(*binary); err != nil {
		fmt.Fprintln(os.Stderr, "building p2pchat:", err)
		return 1
	}
	return m.Run()
}

func build(out string) error {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	cmd := exec.Command("go", "build", "-o", out, "p2pchat")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	var flags []string
	for _, f := range strings.Fields(os.Getenv("GOFLAGS")) {
		if f != "-race" && f != "--race" && f != "-race=true" {
			flags = append(flags, f)
		}
	}
	cmd.Env = append(os.Environ(), "GOFLAGS="+strings.Join(flags, " "))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%w\n%s", err, b)
	}
	return nil
}

// FreePort returns a loopback port that was free a moment ago, never the
// same one twice in this process. It is drawn below the ephemeral range, so
// that neither the source port of a connection nor a listener on port 0 (in
// this process or another) can take it before the test listens on it; and
// from a block of ports that this process claims, so that test binaries run
// in parallel (go test ./... runs one per package) draw different ones.
//
// The range is cut into blocks of portBlock ports. A process claims a block
// by listening on its first port until it exits, starting at the block its
// PID picks and going on to the next if another process holds that one.
// The other ports of the block are handed out in turn, each probed by
// listening on it; once they are used up, the process claims another block.
func FreePort(t testing.TB) int {
	t.Helper()
	portState.mu.Lock()
	defer portState.mu.Unlock()
	lo, hi := portRange()
	blocks := (hi - lo) / portBlock
	for {
		if portState.next%portBlock == 0 { // none yet, or the block is used up
			if portState.claims == blocks {
				t.Fatalf("no free port in [%d, %d)", lo, hi)
			}
			b := (os.Getpid() + portState.claims) % blocks
			portState.claims++
			ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", lo+b*portBlock))
			if err != nil {
				continue // another process's block
			}
			portState.held = append(portState.held, ln)
			portState.next = b*portBlock + 1
		}
		p := lo + portState.next
		portState.next++
		if ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			ln.Close()
			return p
		}
	}
}

// portBlock is how many ports a block has.
const portBlock = 200

// portState is the state of FreePort.
var portState struct {
	mu     sync.Mutex
	claims int            // blocks tried
	held   []net.Listener // one on the first port of each block claimed
	next   int            // offset from lo of the next port to try
}

// portRange is where FreePort draws ports from: the 10000 ports below the
// ephemeral range where the system says where that is (Linux), else below
// the usual Linux one.
func portRange() (lo, hi int) {
	hi = 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				hi = n
			}
		}
	}
	lo = max(hi-10000, 1024)
	if hi-lo < 1000 { // no room below the ephemeral range: try the top of it
		lo, hi = 61000, 65535
	}
	return lo, hi
}
