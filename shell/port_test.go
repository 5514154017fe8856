package shell_test

import (
	"testing"

	"p2pchat/network/networktest"
)

// freePort returns a loopback port below the ephemeral range that nothing
// else in this run takes (networktest.FreePort, shared by every package's
// tests).
func freePort(t testing.TB) int { return networktest.FreePort(t) }
