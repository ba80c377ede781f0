// Package proctest runs the service's commands as OS processes for tests
// of the deployed topology: built once per test binary, started with an
// environment, killed with SIGKILL as a crashed machine would be, and
// restarted.
package proctest

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildOut  []byte
	buildErr  error
)

// Binaries builds cmd/ledgerd and cmd/ledgerctl once per test binary and
// returns the directory holding them. With race set they are built with
// the race detector, as `make test` builds the tests: the packages are
// then already compiled in the build cache, and a data race in either
// process shows in its log (Process.Log), which the tests check.
func Binaries(t testing.TB, race bool) string {
	t.Helper()
	buildOnce.Do(func() {
		if buildDir, buildErr = os.MkdirTemp("", "ledger-bin-"); buildErr != nil {
			return
		}
		args := []string{"build", "-o", buildDir + string(filepath.Separator)}
		if race {
			args = append(args, "-race")
		}
		args = append(args, "github.com/sirgiving/ledger/cmd/ledgerd", "github.com/sirgiving/ledger/cmd/ledgerctl")
		buildOut, buildErr = exec.Command("go", args...).CombinedOutput()
	})
	require.NoError(t, buildErr, "%s", buildOut)
	return buildDir
}

// RemoveBinaries deletes what Binaries built; a test binary's TestMain
// calls it after the tests, so runs do not pile binaries up in the temp
// directory.
func RemoveBinaries() {
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
}

// Buffer is a bytes.Buffer safe for a process writing while a test reads.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Process is one command run by a test; its log collects stdout and
// stderr of every run, each run headed by a marker line.
type Process struct {
	Name string
	Bin  string
	Env  []string
	// Port is the HTTP port (LISTEN_ADDR), kept across restarts so a
	// balancer's address list stays right.
	Port int

	t      testing.TB
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    Buffer
	runs   int
}

// NewLedgerd prepares a ledgerd process named name listening on a free
// loopback port, with env added to a minimal environment (PATH, HOME).
// It is killed when the test ends if it still runs.
func NewLedgerd(t testing.TB, bin, name string, env ...string) *Process {
	t.Helper()
	p := &Process{Name: name, Bin: bin, Port: FreePort(t), t: t}
	p.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"),
		fmt.Sprintf("LISTEN_ADDR=127.0.0.1:%d", p.Port)}, env...)
	t.Cleanup(p.Kill)
	return p
}

// URL is the process's HTTP base URL.
func (p *Process) URL() string { return fmt.Sprintf("http://127.0.0.1:%d", p.Port) }

// Start runs the process and waits until GET /readyz answers 200.
func (p *Process) Start(within time.Duration) {
	p.t.Helper()
	p.mu.Lock()
	require.Nil(p.t, p.cmd, "%s already runs", p.Name)
	p.runs++
	fmt.Fprintf(&p.log, "=== %s run %d\n", p.Name, p.runs)
	cmd := exec.Command(p.Bin)
	cmd.Env = p.Env
	cmd.Stdout, cmd.Stderr = &p.log, &p.log
	require.NoError(p.t, cmd.Start())
	p.cmd, p.exited = cmd, make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(cmd, p.exited)
	exited := p.exited
	p.mu.Unlock()

	deadline := time.Now().Add(within)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-exited:
			require.FailNow(p.t, p.Name+" exited during start", "%s", p.Log())
		default:
		}
		if resp, err := c.Get(p.URL() + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		require.True(p.t, time.Now().Before(deadline), "%s not ready in %s:\n%s", p.Name, within, p.Log())
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill sends SIGKILL, if the process runs, and waits until it is gone.
func (p *Process) Kill() { p.signal(syscall.SIGKILL) }

// Stop sends SIGTERM, if the process runs, and waits until it has shut
// down gracefully.
func (p *Process) Stop() { p.signal(syscall.SIGTERM) }

func (p *Process) signal(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	<-p.exited
	p.cmd = nil
}

// Log is what every run printed.
func (p *Process) Log() string { return p.log.String() }

// DataRaces returns the race detector's reports in the log, if any.
func (p *Process) DataRaces() string {
	l := p.Log()
	if i := strings.Index(l, "WARNING: DATA RACE"); i >= 0 {
		return l[i:min(len(l), i+8000)]
	}
	return ""
}

// FreePort returns a loopback TCP port nothing listens on.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
