// Package infra is the floor of the house: leaf utilities that know nothing
// of the ledger — the JetStream stream settings (bus), an embedded NATS
// server (natsembed), the SSRF guard for outbound webhooks (netguard) and
// authenticated encryption of secrets at rest (secretbox). Any package may
// import them; they import nothing of ours but events (bus names a
// subject after an event).
package infra
