package checkout

import (
	"context"
	"net/http"

	"github.com/sirgiving/ledger/ledger"
)

// Sandbox is the test checkout ledgerd serves itself at /checkout/{id}:
// the donor sees the nonprofit, amount and tip, a test card form, Pay and
// Cancel. It takes no money and needs no network; it serves sandbox
// donations only.
type Sandbox struct {
	// BaseURL is ledgerd's public URL, which checkout links start with.
	BaseURL string
}

// Test cards the sandbox checkout knows: any other well-formed number pays.
const (
	// SandboxCardDeclined is refused, and the donation FAILS.
	SandboxCardDeclined = "4000000000000002"
	// SandboxCardOK is the card the page suggests.
	SandboxCardOK = "4242424242424242"
)

// Name implements Provider.
func (*Sandbox) Name() string { return ledger.ProviderSandbox }

// Environment implements Provider.
func (*Sandbox) Environment() string { return ledger.EnvSandbox }

// Open implements Provider.
func (s *Sandbox) Open(_ context.Context, d ledger.DonationDraft) (ledger.CheckoutLink, error) {
	if d.Tenant.Environment != ledger.EnvSandbox {
		return ledger.CheckoutLink{}, ledger.ErrProviderNotConfigured(ledger.ProviderSandbox, d.Tenant.Environment)
	}
	return ledger.CheckoutLink{Provider: ledger.ProviderSandbox, URL: s.BaseURL + "/checkout/" + d.ID}, nil
}

// Notices implements Provider: the sandbox sends no notifications; its own
// page's Pay and Cancel are recorded by ledgerd directly.
func (*Sandbox) Notices(*http.Request, []byte) ([]Notice, error) { return nil, ErrForged }
