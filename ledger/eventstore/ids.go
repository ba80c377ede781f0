package eventstore

import (
	"strings"

	"github.com/google/uuid"
)

// HexUUID renders u as 32 lowercase hex digits, the form every id of the
// ledger embeds.
func HexUUID(u uuid.UUID) string { return strings.ReplaceAll(u.String(), "-", "") }

// NewID returns a fresh `<prefix>_<32 hex>` id from a random UUID.
func NewID(prefix string) string { return prefix + "_" + HexUUID(uuid.New()) }
