package main

import (
	"flag"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestFlagsFirstMovesFlagsBeforePositionalArguments(t *testing.T) {
	t.Parallel()
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("reason", "", "")
	fs.Int64("at", 0, "")
	fs.Bool("quiet", false, "")
	for _, c := range []struct{ in, want []string }{
		{[]string{"REQ", "--reason", "too much"}, []string{"--reason", "too much", "--", "REQ"}},
		{[]string{"--reason=x", "REQ"}, []string{"--reason=x", "--", "REQ"}},
		{[]string{"--at", "-1"}, []string{"--at", "-1", "--"}},
		{[]string{"A", "--quiet", "B"}, []string{"--quiet", "--", "A", "B"}},
		{[]string{"A", "-", "--", "--reason", "B"}, []string{"--", "A", "-", "--reason", "B"}},
		{[]string{"A", "--unknown", "B"}, []string{"--unknown", "--", "A", "B"}},
	} {
		require.Equal(t, c.want, flagsFirst(fs, c.in), c.in)
	}
}

// Every command accepts its flags after its positional arguments: the
// usage lines show them there (`pools reject REQUEST_ID --reason …`).
// --help placed last must reach the command's own flag set.
func TestEveryCommandTakesFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	commands := [][]string{
		{"migrate"},
		{"projections", "status"}, {"projections", "rebuild", "NAME"},
		{"audit", "verify"}, {"audit", "balances"}, {"audit", "reconcile"},
		{"events", "export"},
		{"users", "create"},
		{"partners", "approve", "ptr_x"}, {"partners", "suspend", "ptr_x"}, {"partners", "set-tier", "ptr_x", "STANDARD"},
		{"pools", "pending"}, {"pools", "approve", "REQ"}, {"pools", "reject", "REQ"},
		{"sign"},
	}
	covered := map[string]bool{}
	for _, c := range commands {
		covered[c[0]] = true
		args := append(append([]string{}, c...), "extra-positional", "--help")
		code, _, errOut := ctl(t, args...)
		require.Equal(t, 0, code, "%v: %s", args, errOut)
	}
	var missing []string
	for name := range groups {
		if !covered[name] {
			missing = append(missing, name)
		}
	}
	sort.Strings(missing)
	require.Empty(t, missing, "commands this test does not exercise")

	// And they take effect: the flag after the name is the one used.
	code, _, errOut := ctl(t, "projections", "rebuild", "nope", "--database-url", "postgres://127.0.0.1:1/none")
	require.Equal(t, 1, code, errOut)
	require.Contains(t, errOut, `no projection named "nope"`)
}
