// Package natscluster runs a three-node NATS JetStream cluster on loopback
// as three OS processes, for tests of the clustered topology: each node
// can be killed with SIGKILL (no graceful leave, no flush, exactly what a
// crashed machine does) and restarted on its ports and storage.
//
// The nodes are real nats-server processes: NATS_SERVER_BIN names the
// binary, else one is built once per test binary from the nats-server
// module in go.mod, the release ledgerd embeds (its packages are already
// in the build cache: ledgerd and ledgerctl import them). The 2.9 binary
// installed on our machines works too (NATS_SERVER_BIN=$(command -v
// nats-server)), but under the cluster test's faults it sometimes took 20 s
// to elect a stream leader and left a restarted replica behind, which
// later releases fixed; production runs 2.10 or later (docker-compose.yml).
package natscluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/proctest"
)

// Size is the number of nodes: the smallest cluster that keeps a quorum
// with one node down.
const Size = 3

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// Binary returns the nats-server binary the cluster runs (see the package
// comment for how it is found).
func Binary() (string, error) {
	binOnce.Do(func() {
		if p := os.Getenv("NATS_SERVER_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "nats-server-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "nats-server")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("building nats-server: %v\n%s", err, out)
		}
	})
	return binPath, binErr
}

// RemoveBinary deletes the nats-server Binary built, if it built one; a
// test binary's TestMain calls it after the tests.
func RemoveBinary() {
	if binPath != "" && os.Getenv("NATS_SERVER_BIN") == "" {
		_ = os.RemoveAll(filepath.Dir(binPath))
	}
}

// Node is one cluster member.
type Node struct {
	Name        string
	ClientPort  int
	ClusterPort int
	dir         string
	cmd         *exec.Cmd
	log         *proctest.Buffer
	exited      chan struct{}
}

// Cluster is three nodes owned by one test; every node still running when
// the test ends is killed.
type Cluster struct {
	t     testing.TB
	bin   string
	Nodes [Size]*Node
	mu    sync.Mutex
}

// Start boots the three nodes and waits until JetStream answers through
// each of them (the meta group has a leader).
func Start(t testing.TB) *Cluster {
	t.Helper()
	bin, err := Binary()
	require.NoError(t, err)
	c := &Cluster{t: t, bin: bin}
	base := t.TempDir()
	for i := range c.Nodes {
		c.Nodes[i] = &Node{Name: fmt.Sprintf("n%d", i+1), ClientPort: proctest.FreePort(t), ClusterPort: proctest.FreePort(t), dir: filepath.Join(base, fmt.Sprintf("n%d", i+1))}
	}
	t.Cleanup(func() {
		for i := range c.Nodes {
			c.Kill(i)
		}
	})
	for i := range c.Nodes {
		c.Restart(i)
	}
	for i := range c.Nodes {
		c.WaitJetStream(i, 60*time.Second)
	}
	return c
}

// URL is the client server list of every node, as NATS_URL takes it.
func (c *Cluster) URL() string {
	urls := make([]string, 0, Size)
	for i := range c.Nodes {
		urls = append(urls, c.NodeURL(i))
	}
	return strings.Join(urls, ",")
}

// NodeURL is node i's client URL.
func (c *Cluster) NodeURL(i int) string {
	return fmt.Sprintf("nats://127.0.0.1:%d", c.Nodes[i].ClientPort)
}

// Index returns the index of the node named name, or -1.
func (c *Cluster) Index(name string) int {
	for i, n := range c.Nodes {
		if n.Name == name {
			return i
		}
	}
	return -1
}

// Restart starts node i (again) on its ports with its storage. The node
// must not be running.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.Nodes[i]
	require.Nil(c.t, n.cmd, "node %s is running", n.Name)
	var routes []string
	for j, o := range c.Nodes {
		if j != i {
			routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", o.ClusterPort))
		}
	}
	args := []string{
		"-a", "127.0.0.1", "-p", fmt.Sprint(n.ClientPort), "-n", n.Name,
		"-js", "-sd", n.dir,
		"--cluster_name", "ledger", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", n.ClusterPort),
		"--routes", strings.Join(routes, ","),
	}
	cmd := exec.Command(c.bin, args...)
	n.log = &proctest.Buffer{}
	cmd.Stdout, cmd.Stderr = n.log, n.log
	require.NoError(c.t, cmd.Start())
	n.cmd, n.exited = cmd, make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(cmd, n.exited)
	waitListening(c.t, n.ClientPort, 30*time.Second)
}

// Kill sends node i SIGKILL, if it runs, and waits until it is gone.
func (c *Cluster) Kill(i int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.Nodes[i]
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGKILL)
	<-n.exited
	n.cmd = nil
}

// Running reports whether node i runs.
func (c *Cluster) Running(i int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Nodes[i].cmd != nil
}

// WaitJetStream waits until JetStream answers an account request through
// node i, which needs the meta group to have a leader.
func (c *Cluster) WaitJetStream(i int, within time.Duration) {
	c.t.Helper()
	nc, err := nats.Connect(c.NodeURL(i), nats.Timeout(2*time.Second))
	require.NoError(c.t, err)
	defer nc.Close()
	js, err := jetstream.New(nc)
	require.NoError(c.t, err)
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err = js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		require.True(c.t, time.Now().Before(deadline), "JetStream through %s not ready in %s: %v", c.Nodes[i].Name, within, err)
		time.Sleep(100 * time.Millisecond)
	}
}

// Connect returns a client of the whole cluster that reconnects forever,
// closed when the test ends.
func (c *Cluster) Connect(t testing.TB) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(c.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond), nats.RetryOnFailedConnect(true))
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	return nc
}

// StreamLeader returns the name of the node leading stream, as the
// cluster reports it, and the stream's replica count.
func StreamLeader(ctx context.Context, js jetstream.JetStream, stream string) (leader string, replicas int, err error) {
	st, err := js.Stream(ctx, stream)
	if err != nil {
		return "", 0, err
	}
	info := st.CachedInfo()
	if info.Cluster == nil || info.Cluster.Leader == "" {
		return "", info.Config.Replicas, errors.New("the stream has no leader")
	}
	return info.Cluster.Leader, info.Config.Replicas, nil
}

// Log is what node i printed since it last started.
func (c *Cluster) Log(i int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.Nodes[i].log == nil {
		return ""
	}
	return c.Nodes[i].log.String()
}

func waitListening(t testing.TB, port int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			conn.Close()
			return
		}
		require.True(t, time.Now().Before(deadline), "nothing listens on %d after %s", port, within)
		time.Sleep(50 * time.Millisecond)
	}
}
