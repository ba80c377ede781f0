package nonprofits_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/nonprofits"
)

// The development set parses, every entry is valid, and the slugs the
// docs and the widget examples use are in it.
func TestDevSetIsValid(t *testing.T) {
	t.Parallel()
	set := nonprofits.DevSet()
	require.GreaterOrEqual(t, len(set), 10)
	slugs := map[string]bool{}
	for _, n := range set {
		slugs[n.Slug] = true
		require.NotEmpty(t, n.EIN, n.Slug)
	}
	require.True(t, slugs["american-red-cross"])
	require.True(t, slugs["feeding-america"])
}

func TestParseCSVNamesBadRows(t *testing.T) {
	t.Parallel()
	list, err := nonprofits.Parse(strings.NewReader("name,slug\n\"Feeding America\",feeding-america\n"), nonprofits.FormatCSV)
	require.NoError(t, err)
	require.Equal(t, "Feeding America", list[0].Name)
	_, err = nonprofits.Parse(strings.NewReader("slug\nx\n"), nonprofits.FormatCSV)
	require.ErrorContains(t, err, `no "name" column`)
	_, err = nonprofits.Parse(strings.NewReader("slug,name\na,A\na,B\n,C\n"), nonprofits.FormatCSV)
	require.ErrorContains(t, err, "line 4 (): slug:")
	require.ErrorContains(t, err, "slug a: listed twice")
}
