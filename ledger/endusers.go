package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"net/mail"
	"strings"

	"github.com/sirgiving/ledger/events"
)

// EndUser is one of a partner's end users, keyed by the partner's external id.
type EndUser struct {
	Exists     bool
	ID         string
	ExternalID string
	PartnerID  string
	Env        string
}

// Apply implements Aggregate.
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
	RegisterAggregate("enduser-", func() Aggregate { return &EndUser{} })
}

// MaxMetadataBytes bounds a metadata object (users and actions).
const MaxMetadataBytes = 16 << 10

// UserInput creates an end user.
type UserInput struct {
	// PartnerUserID is the partner's id for the user; ExternalID is
	// accepted as an alias.
	PartnerUserID string          `json:"partnerUserId"`
	ExternalID    string          `json:"externalId"`
	Email         string          `json:"email"`
	FirstName     string          `json:"firstName"`
	LastName      string          `json:"lastName"`
	Metadata      json.RawMessage `json:"metadata"`
}

// UserPatch updates an end user; absent fields are unchanged.
type UserPatch struct {
	Email     *string         `json:"email"`
	FirstName *string         `json:"firstName"`
	LastName  *string         `json:"lastName"`
	Metadata  json.RawMessage `json:"metadata"`
}

func checkMetadata(field string, m json.RawMessage) (json.RawMessage, *FieldIssue) {
	t := bytes.TrimSpace(m)
	if len(t) == 0 || bytes.Equal(t, []byte("null")) {
		return nil, nil
	}
	if len(t) > MaxMetadataBytes {
		return nil, &FieldIssue{Field: field, Issue: "must be at most 16 KiB of JSON"}
	}
	if t[0] != '{' {
		return nil, &FieldIssue{Field: field, Issue: "must be a JSON object"}
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, t); err != nil {
		return nil, &FieldIssue{Field: field, Issue: "must be valid JSON"}
	}
	return buf.Bytes(), nil
}

func checkExternalID(field, id string) *FieldIssue {
	switch {
	case strings.TrimSpace(id) == "":
		return &FieldIssue{Field: field, Issue: "is required"}
	case len(id) > 255:
		return &FieldIssue{Field: field, Issue: "must be at most 255 characters"}
	}
	return nil
}

func checkEmail(field, e string) *FieldIssue {
	if e == "" {
		return nil
	}
	if a, err := mail.ParseAddress(e); err != nil || a.Address != e || len(e) > 254 {
		return &FieldIssue{Field: field, Issue: "must be a valid email address"}
	}
	return nil
}

func checkName(field, n string) *FieldIssue {
	if len(n) > 200 {
		return &FieldIssue{Field: field, Issue: "must be at most 200 characters"}
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
func (s *Store) CreateUser(ctx context.Context, sc Scope, meta events.Metadata, in UserInput) (UserOutcome, error) {
	if in.ExternalID == "" {
		in.ExternalID = in.PartnerUserID
	}
	var issues []FieldIssue
	for _, fi := range []*FieldIssue{checkExternalID("partnerUserId", in.ExternalID), checkEmail("email", in.Email),
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
		return UserOutcome{}, Invalid("invalid user", issues...)
	}
	out := UserOutcome{UserID: EndUserID(sc, in.ExternalID), ExternalID: in.ExternalID}
	res, err := s.Execute(ctx, Command{Scope: sc, Metadata: meta, Decide: func(ss *Session) error {
		st, err := ss.Load(EndUserStream(sc, in.ExternalID))
		if err != nil {
			return err
		}
		if st.State.(*EndUser).Exists {
			return Errorf(KindConflict, "USER_EXISTS", "a user with partnerUserId %q already exists", in.ExternalID)
		}
		ss.Emit(st.ID, events.EndUserCreated{UserID: out.UserID, ExternalID: in.ExternalID, Email: in.Email,
			FirstName: in.FirstName, LastName: in.LastName, Metadata: md})
		return nil
	}})
	out.Position = res.Position
	return out, err
}

// UpdateUser changes an end user's profile or metadata.
func (s *Store) UpdateUser(ctx context.Context, sc Scope, meta events.Metadata, externalID string, in UserPatch) (UserOutcome, error) {
	var issues []FieldIssue
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
		return UserOutcome{}, Invalid("invalid user update", issues...)
	}
	if in.Email == nil && in.FirstName == nil && in.LastName == nil && md == nil {
		return UserOutcome{}, Invalid("nothing to update", FieldIssue{Field: "body", Issue: "give at least one of email, firstName, lastName, metadata"})
	}
	out := UserOutcome{UserID: EndUserID(sc, externalID), ExternalID: externalID}
	res, err := s.Execute(ctx, Command{Scope: sc, Metadata: meta, Decide: func(ss *Session) error {
		st, err := ss.Load(EndUserStream(sc, externalID))
		if err != nil {
			return err
		}
		if !st.State.(*EndUser).Exists {
			return Errorf(KindNotFound, "USER_NOT_FOUND", "no user with externalId %q", externalID)
		}
		ss.Emit(st.ID, events.EndUserUpdated{UserID: out.UserID, ExternalID: externalID, Email: in.Email,
			FirstName: in.FirstName, LastName: in.LastName, Metadata: md})
		return nil
	}})
	out.Position = res.Position
	return out, err
}
