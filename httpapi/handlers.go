package httpapi

import (
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sirgiving/ledger/checkout"
	"github.com/sirgiving/ledger/ledger"
)

// HandlerDeps are what the endpoint handlers call: the domain's commands
// for writes, the database for read-model queries, and the key
// authenticator for the portal's key endpoints.
type HandlerDeps struct {
	Ledger *ledger.Service
	// DB serves read-model queries (and the portal's login lookups).
	DB *pgxpool.Pool
	// Auth is told about keys the portal creates or changes.
	Auth *KeyAuth
	// MasterKey opens sealed password hashes at login.
	MasterKey []byte
	// ReadWait bounds how long a read waits for the read models to reflect
	// the tenant's last write (default 2s).
	ReadWait time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Checkout is the donation checkout providers: the widget's
	// configuration lists them, and the provider webhooks and the sandbox
	// checkout page (WidgetRoutes) use them.
	Checkout *checkout.Registry
	// MaxDonationAmount is the largest donation in cents (zero: the
	// domain's default), as the widget configuration tells it.
	MaxDonationAmount int64
	// Directory, if set, is an upstream nonprofit directory asked about
	// slugs the directory does not list; what it finds is listed.
	Directory NonprofitDirectory
}

// api is the receiver of every endpoint handler; each resource's handlers
// live in the file named after it (users.go, actions.go, …).
type api struct{ HandlerDeps }

// Handlers implements every endpoint of the contract. Each handler runs
// only for well-formed path and query parameters (params.go).
func Handlers(d HandlerDeps) map[RouteKey]http.HandlerFunc {
	if d.ReadWait <= 0 {
		d.ReadWait = 2 * time.Second
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	a := &api{d}
	hs := map[RouteKey]http.HandlerFunc{
		{http.MethodPost, "/v1/partner/auth/login"}: a.login,
		{http.MethodGet, "/v1/partner/auth/me"}:     a.me,

		{http.MethodPost, "/v1/partner/keys"}:             a.createKey,
		{http.MethodGet, "/v1/partner/keys"}:              a.listKeys,
		{http.MethodGet, "/v1/partner/keys/partner-info"}: a.partnerInfo,
		{http.MethodGet, "/v1/partner/keys/:id"}:          a.getKey,
		{http.MethodPatch, "/v1/partner/keys/:id"}:        a.patchKey,
		{http.MethodDelete, "/v1/partner/keys/:id"}:       a.deleteKey,

		{http.MethodGet, "/v1/partner/config"}:                              a.widgetConfig,
		{http.MethodGet, "/v1/partner/organizations/:slug"}:                 a.getOrganization,
		{http.MethodPost, "/v1/partner/donations/create-link"}:              a.createDonationLink,
		{http.MethodGet, "/v1/partner/donations/status/:partnerDonationId"}: a.donationStatus,

		{http.MethodGet, "/v1/partner/users"}:                          a.listUsers,
		{http.MethodPost, "/v1/partner/users"}:                         a.createUser,
		{http.MethodGet, "/v1/partner/users/:externalId"}:              a.getUser,
		{http.MethodPatch, "/v1/partner/users/:externalId"}:            a.updateUser,
		{http.MethodGet, "/v1/partner/users/:externalId/balance"}:      a.userBalance,
		{http.MethodGet, "/v1/partner/users/:externalId/transactions"}: a.userTransactions,

		{http.MethodPost, "/v1/partner/actions/submit"}:            a.submitAction,
		{http.MethodGet, "/v1/partner/actions"}:                    a.listActions,
		{http.MethodPost, "/v1/partner/actions/bulk"}:              a.bulkActions,
		{http.MethodGet, "/v1/partner/actions/bulk/:jobId"}:        a.bulkJob,
		{http.MethodGet, "/v1/partner/actions/:id"}:                a.getAction,
		{http.MethodPost, "/v1/partner/actions/:actionId/reverse"}: a.reverseAction,

		{http.MethodGet, "/v1/partner/token-pools"}:             a.listPools,
		{http.MethodPost, "/v1/partner/token-pools/request"}:    a.requestAllocation,
		{http.MethodGet, "/v1/partner/token-pools/requests"}:    a.listRequests,
		{http.MethodGet, "/v1/partner/token-pools/:id/balance"}: a.poolBalance,

		{http.MethodGet, "/v1/partner/transactions"}:     a.listTransactions,
		{http.MethodGet, "/v1/partner/transactions/:id"}: a.getTransaction,

		{http.MethodGet, "/v1/partner/campaigns"}:                         a.listCampaigns,
		{http.MethodGet, "/v1/partner/campaigns/active"}:                  a.activeCampaign,
		{http.MethodGet, "/v1/partner/campaigns/:id"}:                     a.getCampaign,
		{http.MethodGet, "/v1/partner/campaigns/:id/analytics"}:           a.campaignAnalytics,
		{http.MethodGet, "/v1/partner/dashboard/campaigns/:id/analytics"}: a.campaignAnalytics,
		{http.MethodPost, "/v1/partner/campaigns"}:                        a.createCampaign,
		{http.MethodPatch, "/v1/partner/campaigns/:id"}:                   a.updateCampaign,

		{http.MethodGet, "/v1/partner/dashboard/summary"}:            a.dashboardSummary,
		{http.MethodGet, "/v1/partner/dashboard/trends"}:             a.dashboardTrends,
		{http.MethodGet, "/v1/partner/dashboard/top-earners"}:        a.topEarners,
		{http.MethodGet, "/v1/partner/dashboard/recent-activity"}:    a.recentActivity,
		{http.MethodGet, "/v1/partner/dashboard/api-usage"}:          a.apiUsage,
		{http.MethodGet, "/v1/partner/dashboard/integration-health"}: a.integrationHealth,

		{http.MethodPost, "/v1/partner/webhooks"}:                                  a.registerWebhook,
		{http.MethodGet, "/v1/partner/webhooks"}:                                   a.listWebhooks,
		{http.MethodDelete, "/v1/partner/webhooks/:id"}:                            a.deleteWebhook,
		{http.MethodGet, "/v1/partner/webhooks/:id/deliveries"}:                    a.webhookDeliveries,
		{http.MethodPost, "/v1/partner/webhooks/:id/deliveries/:deliveryId/retry"}: a.retryDelivery,
		{http.MethodPost, "/v1/partner/webhooks/:id/test"}:                         a.testWebhook,
		{http.MethodGet, "/v1/partner/dashboard/webhooks/health"}:                  a.webhookHealth,
	}
	// Every handler reads its parameters only after the edge check.
	for k, h := range hs {
		hs[k] = checkParams(k.Path, h)
	}
	return hs
}
