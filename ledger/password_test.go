package ledger_test

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger"
)

func TestStoredPasswordsOfBothEventVersionsCheck(t *testing.T) {
	t.Parallel()
	key := bytes.Repeat([]byte{7}, 32)
	hash, err := ledger.HashPassword("correct horse")
	require.NoError(t, err)
	sealed, err := ledger.SealSecret(key, "portaluser-password:usr_1", hash)
	require.NoError(t, err)

	v2 := events.PortalUserCreated{UserID: "usr_1", PasswordSealed: sealed}.StoredPassword()
	require.True(t, ledger.CheckStoredPassword(key, "usr_1", v2, "correct horse"))
	require.False(t, ledger.CheckStoredPassword(key, "usr_1", v2, "wrong horse"))
	require.False(t, ledger.CheckStoredPassword(key, "usr_2", v2, "correct horse"), "a sealed hash moved to another user does not open")
	require.False(t, ledger.CheckStoredPassword(bytes.Repeat([]byte{8}, 32), "usr_1", v2, "correct horse"), "wrong master key")

	v1 := events.PortalUserCreated{UserID: "usr_1", PasswordHash: hash}.StoredPassword()
	require.True(t, ledger.CheckStoredPassword(key, "usr_1", v1, "correct horse"), "version-1 events keep working")
}
