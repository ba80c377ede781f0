package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// unencodable is a payload whose encoding fails.
type unencodable struct{}

func (unencodable) EventType() string            { return "test.unencodable" }
func (unencodable) MarshalJSON() ([]byte, error) { return nil, errors.New("cannot encode") }

func init() { events.Register[unencodable](1) }

// Promise 9 at the store: a command that fails in prefetch, in Decide or
// while its events are encoded fails alone; the commands sharing its group
// commit are appended as if it had not been there. A bundle (ExecuteAll)
// is one group commit by construction, so the neighbours are certain.
func TestOneCommandsFailureNeverFailsItsGroup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := testenv.NewDB(t)
	s := openStore(t, db)

	good := func(i int) eventstore.Command {
		stream := fmt.Sprintf("note-good-%d", i)
		return eventstore.Command{Tenant: scope, Prefetch: []string{stream}, Decide: func(ss *eventstore.Session) error {
			if _, err := ss.Load(stream); err != nil {
				return err
			}
			ss.Emit(stream, testNote{N: i})
			return nil
		}}
	}
	bad := map[string]eventstore.Command{
		// The bytes of DELETE /v1/partner/webhooks/%ff, as a prefetched id
		// and as a load: PostgreSQL would refuse them (SQLSTATE 22021).
		"invalid UTF-8 prefetch and load": {Tenant: scope, Prefetch: []string{"webhook-\xff"}, Decide: func(ss *eventstore.Session) error {
			_, err := ss.Load("webhook-\xff")
			return err
		}},
		"NUL in an id": {Tenant: scope, Decide: func(ss *eventstore.Session) error {
			_, err := ss.Load("action-a\x00b")
			return err
		}},
		"emit to an invalid id": {Tenant: scope, Decide: func(ss *eventstore.Session) error {
			ss.Emit("note-\xfe", testNote{N: -1})
			return nil
		}},
		"panic in Decide": {Tenant: scope, Decide: func(*eventstore.Session) error { panic("boom") }},
		"plain error from Decide": {Tenant: scope, Decide: func(*eventstore.Session) error {
			return errors.New("something of its own")
		}},
		"payload that cannot be encoded": {Tenant: scope, Decide: func(ss *eventstore.Session) error {
			ss.Emit("note-enc", testNote{N: 1})
			ss.Emit("note-enc", unencodable{})
			return nil
		}},
	}
	var cmds []eventstore.Command
	var names []string
	i := 0
	for name, c := range bad {
		cmds = append(cmds, good(i), c)
		names = append(names, "good", name)
		i++
	}
	cmds = append(cmds, good(i))
	names = append(names, "good")

	out, err := s.ExecuteAll(ctx, cmds)
	require.NoError(t, err, "no failure of one command is the group's")
	var appended int
	for k, o := range out {
		if names[k] == "good" {
			require.NoError(t, o.Err, "neighbour %d of a failing command", k)
			require.Len(t, o.Result.Events, 1)
			appended++
			continue
		}
		require.Error(t, o.Err, names[k])
		require.NotNil(t, eventstore.AsError(o.Err), names[k])
		require.Empty(t, o.Result.Events, names[k])
	}
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n))
	require.Equal(t, appended, n, "exactly the good commands were appended")
	rep, err := eventstore.Verify(ctx, db.Pool, nil)
	require.NoError(t, err)
	require.True(t, rep.OK(), "the chain has no gap where a command failed")

	// The same, unbundled: concurrent callers whose commands share group
	// commits with failing ones all succeed.
	var wg sync.WaitGroup
	errs := make([]error, 64)
	for k := range errs {
		wg.Add(1)
		go func(k int) {
			defer wg.Done()
			if k%4 == 0 {
				_, _ = s.Execute(ctx, bad["invalid UTF-8 prefetch and load"])
				return
			}
			_, errs[k] = s.Execute(ctx, good(100+k))
		}(k)
	}
	wg.Wait()
	for k, err := range errs {
		require.NoError(t, err, k)
	}
	for _, c := range []string{"invalid UTF-8 prefetch and load", "NUL in an id"} {
		_, err := s.Execute(ctx, bad[c])
		require.Equal(t, "INVALID_ID", eventstore.AsError(err).Code, c)
	}
}
