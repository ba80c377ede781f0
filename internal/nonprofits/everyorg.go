package nonprofits

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/sirgiving/ledger/ledger"
)

// EveryOrgDirectory looks nonprofits up in Every.org's public nonprofit
// API (GET /v0.2/nonprofit/{slug}?apiKey=…), for slugs the directory does
// not list yet. What it finds is listed in the ledger (a nonprofit.listed
// event, source "every.org"), which is its cache: later lookups never
// leave the server. Slugs it did not find are remembered for a while, so
// a page asking for an unknown slug over and over costs one call.
type EveryOrgDirectory struct {
	// BaseURL is the API's base (default https://partners.every.org).
	BaseURL string
	// APIKey is the public API key Every.org issued.
	APIKey string
	// Client makes the calls (default: 5 s timeout).
	Client *http.Client
	// MissFor is how long an unknown slug is remembered (default 10 min).
	MissFor time.Duration

	mu     sync.Mutex
	misses map[string]time.Time
}

// everyOrgNonprofit is the part of the API's answer that is read.
type everyOrgNonprofit struct {
	Data struct {
		Nonprofit struct {
			Name            string `json:"name"`
			PrimarySlug     string `json:"primarySlug"`
			EIN             string `json:"ein"`
			Description     string `json:"description"`
			WebsiteURL      string `json:"websiteUrl"`
			LogoURL         string `json:"logoUrl"`
			LocationAddress string `json:"locationAddress"`
		} `json:"nonprofit"`
		Tags []struct {
			TagName string `json:"tagName"`
		} `json:"nonprofitTags"`
	} `json:"data"`
}

// Lookup returns the nonprofit slug names upstream, nil when Every.org
// does not know it (or lists it in a form the directory cannot take).
func (d *EveryOrgDirectory) Lookup(ctx context.Context, slug string) (*ledger.NonprofitInput, error) {
	if !ledger.ValidSlug(slug) {
		return nil, nil
	}
	d.mu.Lock()
	if until, ok := d.misses[slug]; ok && time.Now().Before(until) {
		d.mu.Unlock()
		return nil, nil
	}
	d.mu.Unlock()
	base := d.BaseURL
	if base == "" {
		base = "https://partners.every.org"
	}
	client := d.Client
	if client == nil {
		client = &http.Client{Timeout: 5 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/v0.2/nonprofit/"+url.PathEscape(slug)+"?apiKey="+url.QueryEscape(d.APIKey), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("every.org nonprofit API: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		d.miss(slug)
		return nil, nil
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("every.org nonprofit API answered %s", resp.Status)
	}
	var body everyOrgNonprofit
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&body); err != nil {
		return nil, errors.New("every.org nonprofit API: unreadable answer")
	}
	n := body.Data.Nonprofit
	in := ledger.NonprofitInput{Slug: slug, Name: n.Name, EIN: n.EIN, Description: clip(n.Description, 2000),
		WebsiteURL: n.WebsiteURL, LogoURL: n.LogoURL}
	if len(in.EIN) == 9 {
		in.EIN = in.EIN[:2] + "-" + in.EIN[2:]
	}
	parts := strings.Split(n.LocationAddress, ",")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	if len(parts) >= 2 {
		in.City, in.State = clip(parts[0], 100), clip(parts[1], 100)
	}
	if last := parts[len(parts)-1]; last == "USA" || last == "US" {
		in.Country = "US"
	}
	for _, t := range body.Data.Tags {
		if t.TagName != "" && len(in.Categories) < 20 {
			in.Categories = append(in.Categories, clip(t.TagName, 100))
		}
	}
	for _, u := range []*string{&in.WebsiteURL, &in.LogoURL} {
		if !strings.HasPrefix(*u, "https://") {
			*u = "" // the directory keeps https links only
		}
	}
	if len(ledger.ValidateNonprofit(in)) > 0 {
		d.miss(slug)
		return nil, nil
	}
	return &in, nil
}

func (d *EveryOrgDirectory) miss(slug string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.misses == nil || len(d.misses) > 10_000 {
		d.misses = map[string]time.Time{}
	}
	ttl := d.MissFor
	if ttl <= 0 {
		ttl = 10 * time.Minute
	}
	d.misses[slug] = time.Now().Add(ttl)
}

// clip cuts s to at most n bytes on a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}
