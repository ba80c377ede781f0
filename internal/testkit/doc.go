// Package testkit holds the test kits, for tests only: testenv (a real
// PostgreSQL database per test, cloned from a migrated template, and real
// embedded JetStream servers), apptest (the whole service in-process) and
// apitest (a signed HTTP client for the partner API).
package testkit
