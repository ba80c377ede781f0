//go:build !race

package main_test

// raceEnabled: see race_test.go.
const raceEnabled = false
