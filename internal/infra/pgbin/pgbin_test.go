package pgbin

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Times either side of both epochs survive the round trip to the
// microsecond, and PostgreSQL's epoch is zero.
func TestTimestamptzRoundTrips(t *testing.T) {
	t.Parallel()
	require.Equal(t, int64(0), Timestamptz(time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)))
	for _, at := range []time.Time{
		time.Date(1969, 12, 31, 23, 59, 59, 999999000, time.UTC),
		time.Date(1999, 12, 31, 23, 59, 59, 1000, time.UTC),
		time.Date(2026, 12, 3, 1, 2, 3, 456789000, time.FixedZone("x", 3600)),
	} {
		require.True(t, at.Equal(Time(Timestamptz(at))), "%v", at)
	}
}
