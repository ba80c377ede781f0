// Package natsembed runs a real NATS server with JetStream inside the
// process, for `make run` without a NATS_URL and for tests.
package natsembed

import (
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options chooses where and how the embedded server keeps its data.
type Options struct {
	// StoreDir holds JetStream's files; it survives restarts.
	StoreDir string
	// Port to listen on; -1 picks a free one.
	Port int
	// SyncInterval is how often JetStream fsyncs. The server default is two
	// minutes; we default to one second. PostgreSQL, not JetStream, is the
	// source of truth: an unsynced tail lost in a crash is re-read from the
	// event store by projectors (they fill gaps from PostgreSQL), so a short
	// interval bounds replay work without paying an fsync per message.
	SyncInterval time.Duration
}

// Server is a running embedded NATS server.
type Server struct {
	*server.Server
	opts Options
}

// Start boots the server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("natsembed: StoreDir is required")
	}
	if o.Port == 0 {
		o.Port = -1
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = time.Second
	}
	ns, err := server.NewServer(&server.Options{
		ServerName:   "ledgerd-embedded",
		Host:         "127.0.0.1",
		Port:         o.Port,
		JetStream:    true,
		StoreDir:     o.StoreDir,
		SyncInterval: o.SyncInterval,
		NoSigs:       true,
		NoLog:        true,
	})
	if err != nil {
		return nil, fmt.Errorf("natsembed: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(15 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("natsembed: server did not become ready in 15s")
	}
	return &Server{Server: ns, opts: o}, nil
}

// URL is the client URL of the server.
func (s *Server) URL() string { return s.ClientURL() }

// Stop shuts the server down and waits for it to finish.
func (s *Server) Stop() {
	s.Shutdown()
	s.WaitForShutdown()
}
