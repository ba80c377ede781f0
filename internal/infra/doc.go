// Package infra is the floor of the house: leaf utilities that know nothing
// of the ledger — the JetStream stream settings (bus), an embedded NATS
// server (natsembed), the SSRF guard for outbound webhooks (netguard),
// authenticated encryption of secrets at rest (secretbox) and PostgreSQL's
// binary wire format where the ledger writes it by hand (pgbin). Any
// package may import them; they import nothing of ours but events (bus
// names a subject after an event).
package infra
