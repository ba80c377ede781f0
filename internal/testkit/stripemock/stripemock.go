// Package stripemock runs stripe-mock, Stripe's own mock of its API, for
// tests of the Stripe checkout provider. It is built from the Go module
// github.com/stripe/stripe-mock, pinned as a tool in go.mod, once per test
// binary (and cached by the Go build cache across runs), and started on a
// free loopback port for each test that asks.
package stripemock

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// build compiles stripe-mock into the user cache directory, where one
// binary serves every test binary of the module.
func build() (string, error) {
	buildOnce.Do(func() {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		dir = filepath.Join(dir, "sirgiving-ledger-tests")
		if buildErr = os.MkdirAll(dir, 0o755); buildErr != nil {
			return
		}
		binary = filepath.Join(dir, "stripe-mock")
		cmd := exec.Command("go", "build", "-o", binary, "github.com/stripe/stripe-mock")
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building stripe-mock (go build github.com/stripe/stripe-mock, a tool of go.mod): %v\n%s", err, out)
		}
	})
	return binary, buildErr
}

var listening = regexp.MustCompile(`Listening for HTTP at address: (\S+)`)

// Start runs a stripe-mock for t and returns its base URL
// (http://127.0.0.1:PORT); it stops when t ends. A stripe-mock that cannot
// be built or started fails the test, saying why.
func Start(t testing.TB) string {
	t.Helper()
	bin, err := build()
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-http-addr", "127.0.0.1:")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = cmd.Stdout
	require.NoError(t, cmd.Start(), "starting stripe-mock")
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		var seen []string
		for sc.Scan() {
			if m := listening.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
			seen = append(seen, sc.Text())
		}
		addr <- "exited: " + strings.Join(seen, "\n")
	}()
	select {
	case a := <-addr:
		require.False(t, strings.HasPrefix(a, "exited: "), "stripe-mock did not start: %s", a)
		return "http://" + a
	case <-time.After(60 * time.Second):
		require.FailNow(t, "stripe-mock did not report its address within a minute")
		return ""
	}
}
