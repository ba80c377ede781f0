// Package nonprofits reads nonprofit directory files (CSV or JSON lines)
// into the domain's listing inputs, naming the row of every mistake, and
// holds the development set of well-known US nonprofits that ledgerd
// lists in development.
package nonprofits

import (
	"bufio"
	"bytes"
	_ "embed" // the development set is compiled in
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sirgiving/ledger/ledger"
)

// devSet is a small directory of well-known US nonprofits: names, EINs,
// cities and websites as their public filings give them.
//
//go:embed devset.jsonl
var devSet []byte

// DevSet returns the development directory.
func DevSet() []ledger.NonprofitInput {
	out, err := Parse(bytes.NewReader(devSet), FormatJSONLines)
	if err != nil {
		panic("nonprofits: the development set does not parse: " + err.Error())
	}
	return out
}

// File formats.
const (
	FormatCSV       = "csv"
	FormatJSONLines = "jsonl"
)

// FormatOf guesses a file's format from its name: .csv is CSV, anything
// else JSON lines.
func FormatOf(name string) string {
	if strings.HasSuffix(strings.ToLower(name), ".csv") {
		return FormatCSV
	}
	return FormatJSONLines
}

// record is one row in either format; CSV columns have these names, and
// its categories are separated by ";".
type record struct {
	Slug        string   `json:"slug"`
	Name        string   `json:"name"`
	EIN         string   `json:"ein"`
	Description string   `json:"description"`
	WebsiteURL  string   `json:"websiteUrl"`
	LogoURL     string   `json:"logoUrl"`
	City        string   `json:"city"`
	State       string   `json:"state"`
	Country     string   `json:"country"`
	Categories  []string `json:"categories"`
}

// RowError names the rows a file gets wrong; nothing of such a file is
// listed.
type RowError struct {
	Problems []string // "line 7: ein: must be a US EIN such as 53-0196605"
}

// Error lists the first twenty problems, one a line, and counts the rest,
// so an operator's terminal shows what to fix without scrolling a
// thousand-row file past.
func (e *RowError) Error() string {
	const most = 20
	p := e.Problems
	more := ""
	if len(p) > most {
		more = fmt.Sprintf("\n  … and %d more", len(p)-most)
		p = p[:most]
	}
	return fmt.Sprintf("%d problems, nothing imported:\n  %s%s", len(e.Problems), strings.Join(p, "\n  "), more)
}

// Parse reads every row of r, checks each as the domain would list it, and
// returns them all, or a *RowError naming every bad row (by line number).
func Parse(r io.Reader, format string) ([]ledger.NonprofitInput, error) {
	var out []ledger.NonprofitInput
	bad := &RowError{}
	add := func(line int, rec record) {
		in := ledger.NonprofitInput(rec)
		for _, fi := range ledger.ValidateNonprofit(in) {
			bad.Problems = append(bad.Problems, fmt.Sprintf("line %d (%s): %s: %s", line, rec.Slug, fi.Field, fi.Issue))
		}
		out = append(out, in)
	}
	switch format {
	case FormatCSV:
		cr := csv.NewReader(r)
		cr.FieldsPerRecord = -1
		header, err := cr.Read()
		if err != nil {
			return nil, fmt.Errorf("line 1: no CSV header: %w", err)
		}
		cols := map[string]int{}
		for i, h := range header {
			cols[strings.TrimSpace(h)] = i
		}
		for _, must := range []string{"slug", "name"} {
			if _, ok := cols[must]; !ok {
				return nil, fmt.Errorf("line 1: the CSV header has no %q column (columns: slug, name, ein, description, websiteUrl, logoUrl, city, state, country, categories)", must)
			}
		}
		for line := 2; ; line++ {
			row, err := cr.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				bad.Problems = append(bad.Problems, fmt.Sprintf("line %d: %v", line, err))
				continue
			}
			get := func(c string) string {
				if i, ok := cols[c]; ok && i < len(row) {
					return strings.TrimSpace(row[i])
				}
				return ""
			}
			rec := record{Slug: get("slug"), Name: get("name"), EIN: get("ein"), Description: get("description"),
				WebsiteURL: get("websiteUrl"), LogoURL: get("logoUrl"), City: get("city"), State: get("state"), Country: get("country")}
			for _, c := range strings.Split(get("categories"), ";") {
				if c = strings.TrimSpace(c); c != "" {
					rec.Categories = append(rec.Categories, c)
				}
			}
			add(line, rec)
		}
	default:
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for line := 1; sc.Scan(); line++ {
			text := bytes.TrimSpace(sc.Bytes())
			if len(text) == 0 {
				continue
			}
			var rec record
			dec := json.NewDecoder(bytes.NewReader(text))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&rec); err != nil {
				bad.Problems = append(bad.Problems, fmt.Sprintf("line %d: not a JSON object of a nonprofit: %v", line, err))
				continue
			}
			add(line, rec)
		}
		if err := sc.Err(); err != nil {
			return nil, err
		}
	}
	seen := map[string]bool{}
	for _, in := range out {
		if seen[in.Slug] && in.Slug != "" {
			bad.Problems = append(bad.Problems, fmt.Sprintf("slug %s: listed twice", in.Slug))
		}
		seen[in.Slug] = true
	}
	if len(bad.Problems) > 0 {
		return nil, bad
	}
	return out, nil
}
