package httpapi

// RateLeases is how many leases a's rate limiter took from the shared
// count: the requests that paid a round trip for the rate limit.
func RateLeases(a *KeyAuth) int64 { return a.limiter.leases.Load() }
