package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"net/mail"
	"strings"
	"unicode/utf8"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// EndUser is one of a partner's end users, keyed by the partner's external id.
type EndUser struct {
	Exists     bool
	ID         string
	ExternalID string
	PartnerID  string
	Env        string
}

// Apply implements eventstore.Aggregate.
func (u *EndUser) Apply(e events.Event) error {
	pl, err := events.Decode(e)
	if err != nil {
		return err
	}
	if c, ok := pl.(events.EndUserCreated); ok {
		u.Exists, u.ID, u.ExternalID, u.PartnerID, u.Env = true, c.UserID, c.ExternalID, e.PartnerID, e.Environment
	}
	return nil
}

func init() {
	eventstore.RegisterAggregate("enduser-", func() eventstore.Aggregate { return &EndUser{} })
}

// MaxMetadataBytes bounds a metadata object (users and actions).
const MaxMetadataBytes = 16 << 10

// UserInput creates an end user.
type UserInput struct {
	// PartnerUserID is the partner's id for the user; ExternalID is
	// accepted as an alias.
	PartnerUserID string
	ExternalID    string
	Email         string
	FirstName     string
	LastName      string
	Metadata      json.RawMessage
}

// UserPatch updates an end user; absent fields are unchanged.
type UserPatch struct {
	Email     *string
	FirstName *string
	LastName  *string
	Metadata  json.RawMessage
}

func checkMetadata(field string, m json.RawMessage) (json.RawMessage, *eventstore.FieldIssue) {
	t := bytes.TrimSpace(m)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil, nil
	}
	if len(t) > MaxMetadataBytes {
		return nil, &eventstore.FieldIssue{Field: field, Issue: "must be at most 16 KiB of JSON"}
	}
	if t[0] != '{' {
		return nil, &eventstore.FieldIssue{Field: field, Issue: "must be a JSON object"}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, t); err != nil {
		return nil, &eventstore.FieldIssue{Field: field, Issue: "must be valid JSON"}
	}
	return buf.Bytes(), nil
}

func checkExternalID(field, id string) *eventstore.FieldIssue {
	switch {
	case strings.TrimSpace(id) == "":
		return &eventstore.FieldIssue{Field: field, Issue: "is required"}
	case len(id) > 255:
		return &eventstore.FieldIssue{Field: field, Issue: "must be at most 255 characters"}
	case !wellFormedID(id):
		return &eventstore.FieldIssue{Field: field, Issue: idCharsIssue}
	}
	return nil
}

// idCharsIssue is what a partner-chosen id with bad characters is told.
const idCharsIssue = "must be valid UTF-8 without control characters"

// wellFormedID reports whether a partner-chosen id (external user id,
// idempotency key) holds only printable text. The HTTP layer refuses
// anything else in a path or query, so an id holding a control character
// could be created but never named again.
func wellFormedID(id string) bool {
	if !utf8.ValidString(id) {
		return false
	}
	for _, c := range id {
		if c < 0x20 || c == 0x7f || c >= 0x80 && c < 0xa0 {
			return false
		}
	}
	return true
}

func checkEmail(field, e string) *eventstore.FieldIssue {
	if e == "" {
		return nil
	}
	if a, err := mail.ParseAddress(e); err != nil || a.Address != e || len(e) > 254 {
		return &eventstore.FieldIssue{Field: field, Issue: "must be a valid email address"}
	}
	return nil
}

func checkName(field, n string) *eventstore.FieldIssue {
	if len(n) > 200 {
		return &eventstore.FieldIssue{Field: field, Issue: "must be at most 200 characters"}
	}
	return nil
}

// UserOutcome tells the caller which user a command touched.
type UserOutcome struct {
	UserID     string
	ExternalID string
	Position   int64
}

// CreateUser registers an end user; an existing external id is 409 USER_EXISTS.
func (s *Service) CreateUser(ctx context.Context, sc eventstore.Tenant, meta events.Metadata, in UserInput) (UserOutcome, error) {
	if in.ExternalID == "" {
		in.ExternalID = in.PartnerUserID
	}
	var issues []eventstore.FieldIssue
	for _, fi := range []*eventstore.FieldIssue{checkExternalID("partnerUserId", in.ExternalID), checkEmail("email", in.Email),
		checkName("firstName", in.FirstName), checkName("lastName", in.LastName)} {
		if fi != nil {
			issues = append(issues, *fi)
		}
	}
	md, fi := checkMetadata("metadata", in.Metadata)
	if fi != nil {
		issues = append(issues, *fi)
	}
	if len(issues) > 0 {
		return UserOutcome{}, eventstore.Invalid("invalid user", issues...)
	}
	out := UserOutcome{UserID: EndUserID(sc, in.ExternalID), ExternalID: in.ExternalID}
	res, err := s.store.Execute(ctx, eventstore.Command{Tenant: sc, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		st, err := ss.Load(EndUserStream(sc, in.ExternalID))
		if err != nil {
			return err
		}
		if st.State.(*EndUser).Exists {
			return eventstore.Errorf(eventstore.KindConflict, "USER_EXISTS", "a user with partnerUserId %q already exists", in.ExternalID)
		}
		ss.Emit(st.ID, events.EndUserCreated{UserID: out.UserID, ExternalID: in.ExternalID, Email: in.Email,
			FirstName: in.FirstName, LastName: in.LastName, Metadata: md})
		return nil
	}})
	out.Position = res.Position
	return out, err
}

// UpdateUser changes an end user's profile or metadata.
func (s *Service) UpdateUser(ctx context.Context, sc eventstore.Tenant, meta events.Metadata, externalID string, in UserPatch) (UserOutcome, error) {
	var issues []eventstore.FieldIssue
	if in.Email != nil {
		if fi := checkEmail("email", *in.Email); fi != nil {
			issues = append(issues, *fi)
		}
	}
	for f, v := range map[string]*string{"firstName": in.FirstName, "lastName": in.LastName} {
		if v != nil {
			if fi := checkName(f, *v); fi != nil {
				issues = append(issues, *fi)
			}
		}
	}
	md, fi := checkMetadata("metadata", in.Metadata)
	if fi != nil {
		issues = append(issues, *fi)
	}
	if len(issues) > 0 {
		return UserOutcome{}, eventstore.Invalid("invalid user update", issues...)
	}
	if in.Email == nil && in.FirstName == nil && in.LastName == nil && md == nil {
		return UserOutcome{}, eventstore.Invalid("nothing to update", eventstore.FieldIssue{Field: "body", Issue: "give at least one of email, firstName, lastName, metadata"})
	}
	out := UserOutcome{UserID: EndUserID(sc, externalID), ExternalID: externalID}
	res, err := s.store.Execute(ctx, eventstore.Command{Tenant: sc, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		st, err := ss.Load(EndUserStream(sc, externalID))
		if err != nil {
			return err
		}
		if !st.State.(*EndUser).Exists {
			return eventstore.Errorf(eventstore.KindNotFound, "USER_NOT_FOUND", "no user with externalId %q", externalID)
		}
		ss.Emit(st.ID, events.EndUserUpdated{UserID: out.UserID, ExternalID: externalID, Email: in.Email,
			FirstName: in.FirstName, LastName: in.LastName, Metadata: md})
		return nil
	}})
	out.Position = res.Position
	return out, err
}
