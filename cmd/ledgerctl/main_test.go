package main_test

import (
	"bytes"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/httpapi"
	"github.com/sirgiving/ledger/internal/testkit/apptest"
	"github.com/sirgiving/ledger/internal/testkit/testenv"
	"github.com/sirgiving/ledger/projections"
)

var (
	buildOnce sync.Once
	builtBin  string
	buildOut  []byte
	buildErr  error
)

// ledgerctlBinary builds the command once per test binary: the tests that
// need the process boundary (environment, stdin, exit codes) share it.
func ledgerctlBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "ledgerctl-test-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "ledgerctl")
		buildOut, buildErr = exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput()
	})
	require.NoError(t, buildErr, "%s", buildOut)
	return builtBin
}

func TestLedgerctl(t *testing.T) {
	t.Parallel()
	bin := ledgerctlBinary(t)
	srv := apptest.Start(t)

	run := func(stdin string, args ...string) (string, string, error) {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "DATABASE_URL="+srv.DB.URL, "DATA_DIR="+srv.Config.DataDir, "LEDGER_MASTER_KEY=")
		cmd.Stdin = strings.NewReader(stdin)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		return o.String(), e.String(), err
	}

	// Help for every command, and failures exit non-zero.
	for _, args := range [][]string{{"--help"}, {"users", "--help"}, {"users", "create", "--help"}, {"partners", "--help"},
		{"partners", "approve", "--help"}, {"partners", "suspend", "--help"}, {"partners", "set-tier", "--help"}, {"sign", "--help"}} {
		_, stderr, err := run("", args...)
		require.NoError(t, err, args)
		require.Contains(t, stderr, "usage", args)
	}
	for _, args := range [][]string{{}, {"nope"}, {"users", "create", "--email", "x@example.com"}, {"partners", "approve"},
		{"partners", "set-tier", "ptr_x", "GOLD"}, {"sign", "--key", "sk_test_x"}} {
		_, _, err := run("", args...)
		require.Error(t, err, args)
	}

	// Help never prints the database URL (it may hold a password).
	_, stderr, err := run("", "users", "create", "--help")
	require.NoError(t, err)
	require.NotContains(t, stderr, srv.DB.URL)

	// Without ledgerd's master key, users create refuses rather than
	// sealing the password under a key the service does not have.
	cmd := exec.Command(bin, "users", "create", "--email", "lost@example.com", "--password-stdin")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+srv.DB.URL, "DATA_DIR="+t.TempDir(), "LEDGER_MASTER_KEY=")
	cmd.Stdin = strings.NewReader("pw-123456789\n")
	out, err := cmd.CombinedOutput()
	require.Error(t, err)
	require.Contains(t, string(out), "no master key")

	// A password that breaks the rule is refused with the rule, not only
	// "invalid portal user".
	_, stderr, err = run("short\n", "users", "create", "--email", "short@example.com", "--password-stdin")
	require.Error(t, err)
	require.Contains(t, stderr, "password: must be 8 to 72")

	// users create reads the password from stdin and returns only once the
	// user can log in: the accounts read model (what login reads) has
	// applied the creation when the command exits, without waiting here.
	stdout, stderr, err := run("s3cret-password\n", "users", "create", "--email", "Ops@Example.com", "--password-stdin")
	require.NoError(t, err, stderr)
	require.Contains(t, stdout, "usr_")
	require.Contains(t, stdout, "the user can log in")
	var created, applied int64
	require.NoError(t, srv.Pool.QueryRow(t.Context(), `SELECT max(position) FROM events WHERE event_type LIKE 'portaluser.%'`).Scan(&created))
	require.NoError(t, srv.Pool.QueryRow(t.Context(), `SELECT position FROM projection_checkpoints WHERE name = $1`, projections.AccountsName).Scan(&applied))
	require.GreaterOrEqual(t, applied, created, "users create returned before the accounts read model had the user")
	token := srv.Login(t, "ops@example.com", "s3cret-password")
	_, stderr, err = run("s3cret-password\n", "users", "create", "--email", "ops@example.com", "--password-stdin")
	require.Error(t, err)
	require.Contains(t, stderr, "EMAIL_TAKEN")

	// A production key waits for partners approve.
	var key struct{ PartnerID, SecretKey, HMACSecret string }
	require.Equal(t, http.StatusCreated, srv.PortalJSON(t, token, http.MethodPost, "/v1/partner/keys",
		map[string]string{"name": "live", "environment": "production"}, &key))
	p := &apptest.Partner{Srv: srv, PartnerID: key.PartnerID, SecretKey: key.SecretKey, HMACSecret: key.HMACSecret}
	require.Equal(t, http.StatusForbidden, p.JSON(t, http.MethodGet, "/v1/partner/users", nil, nil))
	waitHead := func() {
		head, err := srv.Store.Head(t.Context())
		require.NoError(t, err)
		require.NoError(t, projections.WaitFor(t.Context(), srv.Pool, head, projections.AccountsName))
	}
	_, stderr, err = run("", "partners", "approve", key.PartnerID)
	require.NoError(t, err, stderr)
	waitHead()
	require.NotEqual(t, http.StatusForbidden, p.JSON(t, http.MethodGet, "/v1/partner/users", nil, nil))
	_, stderr, err = run("", "partners", "set-tier", key.PartnerID, "gold")
	require.Error(t, err)
	require.Contains(t, stderr, `unknown tier "gold": valid tiers are STANDARD, PROFESSIONAL and ENTERPRISE`)
	_, stderr, err = run("", "partners", "set-tier", key.PartnerID, "professional")
	require.NoError(t, err, stderr)
	// Flags may follow the partner id, as they may in every command.
	_, stderr, err = run("", "partners", "suspend", key.PartnerID, "--reason", "test")
	require.NoError(t, err, stderr)
	waitHead()
	require.Equal(t, http.StatusForbidden, p.JSON(t, http.MethodGet, "/v1/partner/users", nil, nil))
	var info map[string]any
	require.Equal(t, http.StatusOK, srv.PortalJSON(t, token, http.MethodGet, "/v1/partner/keys/partner-info", nil, &info))
	require.Equal(t, "SUSPENDED", info["status"])
	require.Equal(t, "PROFESSIONAL", info["tier"])

	// sign prints curl-ready headers with the contract's signature.
	bodyFile := filepath.Join(t.TempDir(), "body.json")
	require.NoError(t, os.WriteFile(bodyFile, []byte(`{"amount":"49.99"}`), 0o600))
	stdout, stderr, err = run("", "sign", "--key", key.SecretKey, "--secret", key.HMACSecret, "--method", "post",
		"--path", "/v1/partner/actions/submit?x=1", "--body-file", bodyFile, "--timestamp", "1700000000")
	require.NoError(t, err, stderr)
	want := httpapi.Sign(key.HMACSecret, "1700000000", "POST", "/v1/partner/actions/submit?x=1", []byte(`{"amount":"49.99"}`))
	require.Equal(t, "-H 'X-Partner-Key: "+key.SecretKey+"' -H 'X-Timestamp: 1700000000' -H 'X-Signature: "+want+"'\n", stdout)
}

// Without a running ledgerd nothing applies the accounts read model, so
// users create cannot promise a login: it must say so and fail, within
// its --wait, rather than hang or claim success.
func TestUsersCreateSaysWhenTheReadModelDoesNotCatchUp(t *testing.T) {
	t.Parallel()
	bin := ledgerctlBinary(t)
	db := testenv.NewDB(t)
	cmd := exec.Command(bin, "users", "create", "--email", "alone@example.com", "--password-stdin", "--wait", "300ms")
	cmd.Env = append(os.Environ(), "DATABASE_URL="+db.URL, "DATA_DIR="+t.TempDir(), "LEDGER_MASTER_KEY="+strings.Repeat("ab", 32))
	cmd.Stdin = strings.NewReader("s3cret-password\n")
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	require.Error(t, err, "stdout: %s", o.String())
	require.Contains(t, o.String(), "created portal user usr_")
	require.Contains(t, e.String(), "cannot log in yet")
	require.Contains(t, e.String(), "is ledgerd running")
}
