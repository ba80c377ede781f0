// Command ledgerd is the SIR Giving partner API server: it applies pending
// migrations, serves HTTP, relays committed events to NATS JetStream and
// runs the projectors. Configuration is by environment variable (README).
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"github.com/sirgiving/ledger/internal/app"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ledgerd:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := app.FromEnv()
	if err != nil {
		return err
	}
	log := app.Logger(cfg)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	a, err := app.New(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	ln, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return err
	}
	log.Info("ledgerd listening", "addr", ln.Addr().String(), "env", cfg.Env)
	fmt.Fprintf(os.Stderr, "\n  SIR Giving ledger is up on http://%s\n  try: curl -s http://%s/readyz\n       open http://%s/partner-api for the API reference\n\n",
		displayAddr(ln.Addr()), displayAddr(ln.Addr()), displayAddr(ln.Addr()))
	return a.Run(ctx, ln)
}

func displayAddr(addr net.Addr) string {
	tcp, ok := addr.(*net.TCPAddr)
	if !ok || tcp.IP.IsUnspecified() {
		if ok {
			return fmt.Sprintf("localhost:%d", tcp.Port)
		}
	}
	return addr.String()
}
