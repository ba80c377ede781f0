//go:build race

package main_test

// raceEnabled: the test binary runs with the race detector, so the
// ledgerd processes it starts are built with it too.
const raceEnabled = true
