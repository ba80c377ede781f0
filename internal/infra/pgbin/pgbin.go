// Package pgbin converts values to and from PostgreSQL's binary wire
// format where the ledger writes or reads it by hand (binary COPY, the
// append's arguments, raw event reads) instead of through pgx's codecs.
package pgbin

import "time"

// unixToY2K is the seconds from the Unix epoch to PostgreSQL's,
// 2000-01-01 UTC.
const unixToY2K = 946684800

// Timestamptz is t as PostgreSQL's binary timestamptz: microseconds since
// 2000-01-01 UTC, as pgx sends it.
func Timestamptz(t time.Time) int64 { return t.UnixMicro() - unixToY2K*1e6 }

// Time decodes a binary timestamptz, us microseconds since 2000-01-01 UTC,
// as a UTC time.
func Time(us int64) time.Time {
	sec, frac := us/1e6, us%1e6
	if frac < 0 {
		sec, frac = sec-1, frac+1e6
	}
	return time.Unix(unixToY2K+sec, frac*1000).UTC()
}
