package ledger

import (
	"context"
	"strings"
	"time"

	"github.com/sirgiving/ledger/events"
	"github.com/sirgiving/ledger/ledger/eventstore"
)

// Pool is a token pool's state. Its invariant, kept because every debit is
// decided against this state inside the committer: Available() >= 0.
type Pool struct {
	ID          string
	PartnerID   string
	Environment string
	Provisioned bool
	Name        string
	Allocated   int64
	Distributed int64
	Returned    int64
	Threshold   int64
	ExpiresAt   *time.Time
	LowNotified bool
	AutoRefill  bool
	RefillAt    int64
	RefillAmt   int64
	// Requests by id, and whether an auto-refill request is pending.
	Requests    map[string]*AllocationRequest
	RefillOpen  bool
	VestingDays int
}

// AllocationRequest is one request for more tokens.
type AllocationRequest struct {
	ID     string
	Amount int64
	Status string // PENDING, APPROVED, REJECTED
	Auto   bool
}

// Available is what the pool can still give: allocated − distributed + returned.
func (p *Pool) Available() int64 { return p.Allocated - p.Distributed + p.Returned }

// Expired reports whether the pool's expiration has passed at now.
func (p *Pool) Expired(now time.Time) bool { return p.ExpiresAt != nil && !now.Before(*p.ExpiresAt) }

// Apply implements eventstore.Aggregate.
func (p *Pool) Apply(e events.Event) error {
	pl, err := events.Decode(e)
	if err != nil {
		return err
	}
	return p.ApplyPayload(e, pl)
}

// ApplyPayload implements eventstore.PayloadApplier: Apply with the
// payload already decoded.
func (p *Pool) ApplyPayload(e events.Event, pl events.Payload) error {
	if p.PartnerID == "" {
		p.PartnerID, p.Environment = e.PartnerID, e.Environment
		p.ID = strings.TrimPrefix(e.StreamID, "pool-")
	}
	if p.Requests == nil {
		p.Requests = map[string]*AllocationRequest{}
	}
	switch v := pl.(type) {
	case events.PoolProvisioned:
		p.Provisioned = true
		p.Name, p.Allocated, p.Threshold, p.ExpiresAt = v.Name, p.Allocated+v.Allocated, v.LowBalanceThreshold, v.ExpiresAt
		p.AutoRefill, p.RefillAt, p.RefillAmt, p.VestingDays = v.AutoRefill, v.AutoRefillThreshold, v.AutoRefillAmount, v.VestingDays
	case events.PoolDebited:
		p.Distributed += v.Amount
	case events.PoolCredited:
		p.Returned += v.Amount
	case events.PoolLowBalance:
		p.LowNotified = true
	case events.PoolAllocationRequested:
		p.Requests[v.RequestID] = &AllocationRequest{ID: v.RequestID, Amount: v.Amount, Status: "PENDING", Auto: v.Auto}
		if v.Auto {
			p.RefillOpen = true
		}
	case events.PoolAllocationApproved:
		p.Allocated += v.Amount
		if r := p.Requests[v.RequestID]; r != nil {
			r.Status = "APPROVED"
			if r.Auto {
				p.RefillOpen = false
			}
		}
	case events.PoolAllocationRejected:
		if r := p.Requests[v.RequestID]; r != nil {
			r.Status = "REJECTED"
			if r.Auto {
				p.RefillOpen = false
			}
		}
	}
	// A pool back at or over its threshold may warn again on the next crossing.
	if p.LowNotified && p.Available() >= p.Threshold {
		p.LowNotified = false
	}
	return nil
}

func init() {
	eventstore.RegisterAggregate("pool-", func() eventstore.Aggregate { return &Pool{} })
}

func loadPool(s *eventstore.Session, poolID string) (*Pool, *eventstore.Stream, error) {
	st, err := s.Load(PoolStream(poolID))
	if err != nil {
		return nil, nil, err
	}
	p := st.State.(*Pool)
	return p, st, nil
}

// ownedBy reports whether the pool exists in the stream and belongs to scope.
func (p *Pool) ownedBy(sc eventstore.Tenant) bool {
	return p.PartnerID == sc.PartnerID && p.Environment == sc.Environment
}

// afterDebit emits, into the same command, what a debit of amount makes
// due: the low-balance warning (once per crossing) and an auto-refill
// request (once until it is decided; approved at once in sandbox).
func (p *Pool) afterDebit(s *eventstore.Session, sc eventstore.Tenant, amount int64) {
	avail := p.Available() - amount
	if p.Threshold > 0 && avail < p.Threshold && !p.LowNotified {
		s.EmitFor(PoolStream(p.ID), sc, events.PoolLowBalance{PoolID: p.ID, Available: avail, Threshold: p.Threshold})
	}
	if p.AutoRefill && p.RefillAmt > 0 && avail < p.RefillAt && !p.RefillOpen {
		id := eventstore.NewID("preq")
		s.EmitFor(PoolStream(p.ID), sc, events.PoolAllocationRequested{RequestID: id, PoolID: p.ID, Amount: p.RefillAmt, Reason: "auto-refill", Auto: true})
		if sc.Environment == "sandbox" {
			s.EmitFor(PoolStream(p.ID), sc, events.PoolAllocationApproved{RequestID: id, PoolID: p.ID, Amount: p.RefillAmt, ApprovedBy: "sandbox-auto"})
		}
	}
}

// PoolInput describes a pool to provision.
type PoolInput struct {
	PoolID              string // empty: the tenant's default pool
	Name                string
	Allocated           int64
	LowBalanceThreshold int64
	ExpiresAt           *time.Time
	VestingDays         int
	AutoRefill          bool
	AutoRefillThreshold int64
	AutoRefillAmount    int64
}

// ProvisionPool creates a pool for sc. Provisioning an existing pool is a
// 409 POOL_EXISTS. It returns the pool id.
func (s *Service) ProvisionPool(ctx context.Context, sc eventstore.Tenant, meta events.Metadata, in PoolInput) (string, eventstore.Result, error) {
	if in.PoolID == "" {
		in.PoolID = DefaultPoolID(sc)
	}
	if in.Name == "" {
		in.Name = strings.ToUpper(sc.Environment[:1]) + sc.Environment[1:] + " pool"
	}
	if in.Allocated < 0 || in.LowBalanceThreshold < 0 || in.AutoRefillAmount < 0 || in.AutoRefillThreshold < 0 {
		return "", eventstore.Result{}, eventstore.Invalid("token amounts must not be negative")
	}
	if sc.Environment != "sandbox" && sc.Environment != "production" {
		return "", eventstore.Result{}, eventstore.Invalid("unknown environment", eventstore.FieldIssue{Field: "environment", Issue: "must be sandbox or production"})
	}
	res, err := s.store.Execute(ctx, eventstore.Command{Tenant: sc, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		p, _, err := loadPool(ss, in.PoolID)
		if err != nil {
			return err
		}
		if p.Provisioned {
			return eventstore.Errorf(eventstore.KindConflict, "POOL_EXISTS", "pool %s is already provisioned", in.PoolID)
		}
		ss.Emit(PoolStream(in.PoolID), events.PoolProvisioned{PoolID: in.PoolID, Name: in.Name, Environment: sc.Environment,
			Allocated: in.Allocated, LowBalanceThreshold: in.LowBalanceThreshold, ExpiresAt: in.ExpiresAt, VestingDays: in.VestingDays,
			AutoRefill: in.AutoRefill, AutoRefillThreshold: in.AutoRefillThreshold, AutoRefillAmount: in.AutoRefillAmount})
		return nil
	}})
	return in.PoolID, res, err
}

// AllocationInput is a partner's request for more tokens.
type AllocationInput struct {
	PoolID      string
	TokenPoolID string // alias of PoolID
	Amount      int64
	Reason      string
}

// AllocationOutcome is what RequestAllocation decided.
type AllocationOutcome struct {
	RequestID string
	PoolID    string
	Amount    int64
	Status    string
	Position  int64
}

// RequestAllocation files a request for more tokens in a pool (the
// default pool when none is named). Sandbox requests are approved in the
// same command; production ones wait for an operator.
func (s *Service) RequestAllocation(ctx context.Context, sc eventstore.Tenant, meta events.Metadata, in AllocationInput) (AllocationOutcome, error) {
	var issues []eventstore.FieldIssue
	if in.Amount <= 0 {
		issues = append(issues, eventstore.FieldIssue{Field: "amount", Issue: "must be a positive whole number of tokens"})
	} else if in.Amount > 1_000_000_000_000 {
		issues = append(issues, eventstore.FieldIssue{Field: "amount", Issue: "must be at most 1000000000000"})
	}
	if len(in.Reason) > 1000 {
		issues = append(issues, eventstore.FieldIssue{Field: "reason", Issue: "must be at most 1000 characters"})
	}
	if len(issues) > 0 {
		return AllocationOutcome{}, eventstore.Invalid("invalid allocation request", issues...)
	}
	if in.TokenPoolID == "" {
		in.TokenPoolID = in.PoolID
	}
	poolID := in.TokenPoolID
	if poolID == "" {
		poolID = DefaultPoolID(sc)
	}
	out := AllocationOutcome{RequestID: eventstore.NewID("preq"), PoolID: poolID, Amount: in.Amount, Status: "PENDING"}
	res, err := s.store.Execute(ctx, eventstore.Command{Tenant: sc, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		p, st, err := loadPool(ss, poolID)
		if err != nil {
			return err
		}
		if st.Version > 0 && !p.ownedBy(sc) || in.TokenPoolID != "" && !p.Provisioned {
			return eventstore.Errorf(eventstore.KindNotFound, "POOL_NOT_FOUND", "no token pool %s in this environment", poolID)
		}
		ss.Emit(PoolStream(poolID), events.PoolAllocationRequested{RequestID: out.RequestID, PoolID: poolID, Amount: in.Amount, Reason: in.Reason})
		if sc.Environment == "sandbox" {
			if !p.Provisioned {
				ss.Emit(PoolStream(poolID), events.PoolProvisioned{PoolID: poolID, Name: "Sandbox pool", Environment: sc.Environment})
			}
			ss.Emit(PoolStream(poolID), events.PoolAllocationApproved{RequestID: out.RequestID, PoolID: poolID, Amount: in.Amount, ApprovedBy: "sandbox-auto"})
			out.Status = "APPROVED"
		}
		return nil
	}})
	out.Position = res.Position
	return out, err
}

// DecideAllocation approves or rejects a pending request (operator
// command). Approving a request on a production pool that was never
// provisioned provisions it.
func (s *Service) DecideAllocation(ctx context.Context, sc eventstore.Tenant, meta events.Metadata, poolID, requestID string, approve bool, by, reason string) (eventstore.Result, error) {
	return s.store.Execute(ctx, eventstore.Command{Tenant: sc, Metadata: meta, Decide: func(ss *eventstore.Session) error {
		p, _, err := loadPool(ss, poolID)
		if err != nil {
			return err
		}
		r := p.Requests[requestID]
		if r == nil || !p.ownedBy(sc) {
			return eventstore.Errorf(eventstore.KindNotFound, "REQUEST_NOT_FOUND", "no allocation request %s", requestID)
		}
		if r.Status != "PENDING" {
			return eventstore.Errorf(eventstore.KindConflict, "REQUEST_ALREADY_DECIDED", "request %s is already %s", requestID, r.Status)
		}
		if !approve {
			ss.Emit(PoolStream(poolID), events.PoolAllocationRejected{RequestID: requestID, PoolID: poolID, Reason: reason, RejectedBy: by})
			return nil
		}
		if !p.Provisioned {
			name := strings.ToUpper(sc.Environment[:1]) + sc.Environment[1:] + " pool"
			ss.Emit(PoolStream(poolID), events.PoolProvisioned{PoolID: poolID, Name: name, Environment: sc.Environment})
		}
		ss.Emit(PoolStream(poolID), events.PoolAllocationApproved{RequestID: requestID, PoolID: poolID, Amount: r.Amount, ApprovedBy: by})
		return nil
	}})
}
