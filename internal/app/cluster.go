package app

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/sirgiving/ledger/internal/infra/bus"
)

// adviseReplicas checks, once NATS answers, that the event stream is
// replicated as a cluster needs (bus.ReplicaAdvice) and says so in the log,
// with the fix, when it is not. It keeps looking for a while, because the
// relay of this or another process raises a stream's replicas to
// NATS_REPLICAS when it leads: the log then says the advice was followed.
// An operator who missed the warning sees the same text in every start.
func (a *App) adviseReplicas(ctx context.Context) {
	js, err := jetstream.New(a.NC)
	if err != nil {
		return
	}
	warned := ""
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); {
		if a.NC.IsConnected() {
			cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			st, err := js.Stream(cctx, a.Bus.Stream)
			cancel()
			switch {
			case err == nil:
				info := st.CachedInfo()
				advice := bus.ReplicaAdvice(info, a.Config.NATSReplicas)
				if advice != "" && advice != warned {
					a.Log.Warn("NATS stream replication: " + advice)
					warned = advice
				}
				if advice == "" {
					if warned != "" {
						a.Log.Info("NATS stream replication is now as configured", "stream", info.Config.Name, "replicas", info.Config.Replicas)
					}
					return
				}
			case errors.Is(err, jetstream.ErrStreamNotFound):
				// The relay creates it with NATS_REPLICAS when it first leads.
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
