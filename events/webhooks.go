package events

import "time"

// WebhookRegistered records a new webhook subscription. The signing secret
// is stored only encrypted (AES-256-GCM under the master key, bound to the
// webhook id); the plaintext is shown to the partner once and never stored.
type WebhookRegistered struct {
	WebhookID        string   `json:"webhookId"`
	URL              string   `json:"url"`
	Description      string   `json:"description"`
	EventTypes       []string `json:"eventTypes"`
	ReceiveAllEvents bool     `json:"receiveAllEvents"`
	SecretSealed     []byte   `json:"secretSealed"`
}

// EventType implements Payload.
func (WebhookRegistered) EventType() string { return "webhook.registered" }

// WebhookDeleted records that a partner deleted a subscription; nothing is
// delivered to it afterwards.
type WebhookDeleted struct {
	WebhookID string `json:"webhookId"`
}

// EventType implements Payload.
func (WebhookDeleted) EventType() string { return "webhook.deleted" }

// WebhookTestRequested asks for one webhook.test delivery to WebhookID only.
type WebhookTestRequested struct {
	WebhookID string `json:"webhookId"`
}

// EventType implements Payload.
func (WebhookTestRequested) EventType() string { return "webhook.test_requested" }

// WebhookDisabled records that the dispatcher gave up on an endpoint that
// kept failing with no success since FailingSince.
type WebhookDisabled struct {
	WebhookID    string    `json:"webhookId"`
	Reason       string    `json:"reason"`
	FailingSince time.Time `json:"failingSince"`
}

// EventType implements Payload.
func (WebhookDisabled) EventType() string { return "webhook.disabled" }

func init() {
	Register[WebhookRegistered](1)
	Register[WebhookDeleted](1)
	Register[WebhookTestRequested](1)
	Register[WebhookDisabled](1)
}
