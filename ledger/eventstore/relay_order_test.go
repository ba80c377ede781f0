package eventstore_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// dropProxy forwards NATS connections to a server, and silently drops the
// drop-th message the client publishes to a subject starting with prefix:
// what a broker that restarts or changes leader mid-batch does to one
// message of a pipelined batch, while those after it still arrive.
type dropProxy struct {
	ln     net.Listener
	target string
	prefix string
	drop   int64
	seen   atomic.Int64
}

func newDropProxy(t *testing.T, target, prefix string, drop int64) *dropProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &dropProxy{ln: ln, target: strings.TrimPrefix(target, "nats://"), prefix: prefix, drop: drop}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", p.target)
			if err != nil {
				c.Close()
				continue
			}
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(c, s); c.Close() }()
			go func() { defer wg.Done(); p.clientToServer(c, s); s.Close() }()
		}
	}()
	return p
}

func (p *dropProxy) URL() string { return "nats://" + p.ln.Addr().String() }

// clientToServer copies the client's protocol lines, parsing PUB and HPUB
// so that a whole message (line and payload) can be left out.
func (p *dropProxy) clientToServer(c, s net.Conn) {
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		out := []byte(line)
		if f := strings.Fields(line); len(f) >= 3 && (f[0] == "PUB" || f[0] == "HPUB") {
			size, err := strconv.Atoi(f[len(f)-1])
			if err != nil {
				return
			}
			payload := make([]byte, size+2)
			if _, err := io.ReadFull(r, payload); err != nil {
				return
			}
			if strings.HasPrefix(f[1], p.prefix) && p.seen.Add(1) == p.drop {
				continue
			}
			out = append(out, payload...)
		}
		if _, err := s.Write(out); err != nil {
			return
		}
	}
}

// A publish that fails partway through a pipelined batch — here one message
// lost on the way, the ones after it delivered — must not let the later
// ones into the stream ahead of it: each publish expects its predecessor's
// sequence, so the stream stays an in-order prefix, and the relay re-sends
// from the first unacknowledged position. The events alternate between two
// tenants every five, so one batch is ten messages (a message carries one
// tenant's run); the fourth is lost. Without that chaining the stream holds
// 1..15, 21..50 and the relay, re-syncing from the stream's last message,
// never publishes 16..20.
func TestRelayKeepsOrderWhenAPublishFailsMidBatch(t *testing.T) {
	t.Parallel()
	db := testenv.NewDB(t)
	n := testenv.NewNATS(t)
	s := openStore(t, db)
	other := eventstore.Tenant{PartnerID: scope.PartnerID + "-other", Environment: scope.Environment}
	for i := 0; i < 50; i++ {
		tenant := scope
		if i/5%2 == 1 {
			tenant = other
		}
		_, err := s.Append(context.Background(), tenant, events.Metadata{}, "note-mid-"+tenant.PartnerID, eventstore.ExpectAny, testNote{N: i})
		require.NoError(t, err)
	}

	proxy := newDropProxy(t, n.URL(), "ledger.events.", 4)
	nc, err := nats.Connect(proxy.URL())
	require.NoError(t, err)
	t.Cleanup(nc.Close)
	r, err := eventstore.NewRelay(db.Pool, nc, eventstore.RelayOptions{Poll: 50 * time.Millisecond, AckWait: time.Second})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	checkExactlyOnceInOrder(t, readStream(t, n, 50), 50)
	require.GreaterOrEqual(t, proxy.seen.Load(), int64(11), "the dropped message was published again")
}
