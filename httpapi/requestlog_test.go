package httpapi

import (
	"bytes"
	"context"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
)

// The request logger is built lazily, but what it logs carries every
// attribute added along the way, in order, and the earlier loggers are
// not changed by later additions.
func TestRequestLoggerCarriesItsAttributes(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	base := slog.New(slog.NewTextHandler(&buf, nil))
	ctx := withRequestID(context.Background(), "req_1", base)
	withClient := withLogAttrs(ctx, "clientRequestId", "c-1")
	withPartner := withLogAttrs(withClient, "partnerId", "ptr_1", "environment", "sandbox")

	loggerFrom(withPartner).Info("one")
	require.Contains(t, buf.String(), `msg=one requestId=req_1 clientRequestId=c-1 partnerId=ptr_1 environment=sandbox`)
	buf.Reset()
	loggerFrom(ctx).Info("two")
	require.Contains(t, buf.String(), `msg=two requestId=req_1`)
	require.NotContains(t, buf.String(), "partnerId")
	require.Equal(t, slog.Default(), loggerFrom(context.Background()))
}
