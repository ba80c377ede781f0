package httpapi_test

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/sirgiving/ledger/internal/testkit/apptest"
)

// chromiumPath finds the browser the widget test drives: CHROMIUM_BIN, or
// Debian's chromium on PATH. A machine without one fails the test, never
// skips it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM_BIN"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	require.FailNow(t, "no Chromium to drive the widget test",
		"install Debian's chromium (apt-get install -y chromium; .ci/run does it) or set CHROMIUM_BIN")
	return ""
}

// partnerPage is a partner's page embedding the widget, served from its
// own origin under a strict Content-Security-Policy: scripts and requests
// only from the API's origin, no inline script or style, nothing else.
func partnerPage(t *testing.T, apiURL, publishableKey string) *httptest.Server {
	t.Helper()
	csp := "default-src 'none'; script-src " + apiURL + "; connect-src " + apiURL +
		"; style-src 'none'; img-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	page := `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Example Co gives back</title></head><body>
<h1>Round up for the Red Cross</h1>
<script src="` + html.EscapeString(apiURL) + `/widget.js" data-partner-key="` + html.EscapeString(publishableKey) + `"
  data-nonprofit="american-red-cross" data-amount="2500" data-currency="USD" data-provider="stripe"></script>
</body></html>`
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", csp)
		_, _ = w.Write([]byte(page))
	}))
	t.Cleanup(s.Close)
	return s
}

// A donor in a real headless Chromium: the partner's page embeds
// /widget.js, the donor clicks Donate, pays on the sandbox checkout, comes
// back, and the page shows COMPLETED with the tokens; the status endpoint
// and the partner's webhook receiver say the same, and the browser
// reported no CSP violation or script error on the way.
func TestWidgetInABrowser(t *testing.T) {
	t.Parallel()
	srv := apptest.Start(t, withDevNonprofits)
	p := srv.NewPartner(t, "sandbox")
	hooks := newHookReceiver(t)
	subscribe(t, p, hooks)
	site := partnerPage(t, srv.URL, p.PublicKey)

	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromiumPath(t)), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.UserDataDir(t.TempDir()))
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 2*time.Minute) // a deadline for a hung browser, not a speed check
	defer cancelTimeout()

	var mu sync.Mutex
	var console []string
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			mu.Lock()
			console = append(console, fmt.Sprintf("%s: %s (%s)", m.Type, m.Text, m.URL))
			mu.Unlock()
		}
	}()

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(site.URL+"/give"),
		chromedp.WaitVisible(chromedp.CSS(`[data-sir-form] input[name=email]`)),
		chromedp.SendKeys(chromedp.CSS(`[data-sir-form] input[name=email]`), "grace@example.com"),
		chromedp.SendKeys(chromedp.CSS(`[data-sir-form] input[name=firstName]`), "Grace"),
		chromedp.Click(chromedp.CSS(`[data-sir-donate]`)),
		// The sandbox checkout, served by ledgerd.
		chromedp.WaitVisible(chromedp.ID("pay")),
	), "browser console: %v", console)
	loc, err := chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(loc, srv.URL+"/checkout/don_"), loc)
	total, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("total")))
	require.NoError(t, err)
	require.Equal(t, "25.00 USD", strings.TrimSpace(total))

	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click(chromedp.ID("pay")),
		// Back on the partner's page, which shows the outcome.
		chromedp.WaitVisible(chromedp.CSS(`[data-sir-status="COMPLETED"]`)),
	), "browser console: %v", console)
	loc, err = chromedp.Run(ctx, chromedp.Location())
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(loc, site.URL+"/give?"), loc)
	id := strings.TrimPrefix(loc[strings.Index(loc, "sirDonationId="):], "sirDonationId=")
	id, _, _ = strings.Cut(id, "&")
	tokensText, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`[data-sir-tokens]`)))
	require.NoError(t, err)
	tokens, err := strconv.ParseInt(strings.TrimSpace(tokensText), 10, 64)
	require.NoError(t, err)
	require.Equal(t, int64(25), tokens)

	st := status(t, p, id)
	require.Equal(t, "COMPLETED", st.Status)
	require.Equal(t, tokens, st.TokensRewarded)
	hook := hooks.waitFor(t, "donation.completed", id)
	require.Equal(t, float64(tokens), hook["tokensRewarded"])
	require.Equal(t, "grace@example.com", hook["partnerUserId"])

	mu.Lock()
	defer mu.Unlock()
	t.Logf("browser console: %q", console)
	for _, m := range console {
		require.NotContains(t, m, "Content Security Policy", "the widget must run under a strict CSP")
		require.False(t, strings.HasPrefix(m, "exception"), "script error: %s", m)
	}
}
