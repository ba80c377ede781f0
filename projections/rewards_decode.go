package projections

import (
	"encoding/json"
	"strconv"

	"github.com/sirgiving/ledger/events"
)

// A rebuild decodes every action.completed, pool.debited and
// campaign.budget_debited ever recorded, and the live fold most of what
// arrives under load; encoding/json's reflection was most of their Go
// time. decodeHot parses those payloads, at their
// current schema version, by hand — but only in the plain shape
// json.Marshal writes them in: known keys each at most once, strings of
// printable ASCII without escapes, integers without fraction or exponent.
// Anything else (an escape, an unknown or repeated key, a null, a number
// json would reject) makes it report false, and the caller decodes with
// events.Decode. Where it succeeds the result is what events.Decode
// returns (FuzzDecodeHotEqualsDecode checks).

// hotVersions are the schema versions decodeHot understands: the current
// ones, so an upcaster never needs to run.
var hotVersions = map[string]int{}

func init() {
	for _, p := range []events.Payload{events.ActionCompleted{}, events.PoolDebited{}, events.CampaignBudgetDebited{}} {
		typ, v, _, err := events.Encode(p)
		if err != nil {
			panic(err)
		}
		hotVersions[typ] = v
	}
}

// decodeHot decodes e's payload if it is one of the hot types in the
// plain shape; plain then also reports that every string in it is
// printable ASCII without quotes or backslashes.
func decodeHot(e events.Event) (pl events.Payload, plain bool) {
	v, ok := hotVersions[e.Type]
	if !ok || v != e.SchemaVersion {
		return nil, false
	}
	s := &jscan{b: e.Payload, ok: true}
	switch e.Type {
	case "action.completed":
		var a events.ActionCompleted
		s.object(func(key string) uint32 {
			switch key {
			case "actionId":
				a.ActionID = s.str()
				return 1
			case "idempotencyKey":
				a.IdempotencyKey = s.str()
				return 1 << 1
			case "actionType":
				a.ActionType = s.str()
				return 1 << 2
			case "amount":
				a.Amount = s.str()
				return 1 << 3
			case "currency":
				a.Currency = s.str()
				return 1 << 4
			case "status":
				a.Status = s.str()
				return 1 << 5
			case "tokensDistributed":
				a.TokensDistributed = s.int()
				return 1 << 6
			case "transactionIds":
				a.TransactionIDs = s.strs()
				return 1 << 7
			case "stakeholders":
				a.Stakeholders = s.rewards()
				return 1 << 8
			case "poolId":
				a.PoolID = s.str()
				return 1 << 9
			case "campaignId":
				a.CampaignID = s.str()
				return 1 << 10
			case "metadata":
				a.Metadata = s.raw()
				return 1 << 11
			case "requestHash":
				a.RequestHash = s.str()
				return 1 << 12
			}
			s.ok = false
			return 0
		})
		pl = a
	case "pool.debited":
		id, ids, amount := s.debit("poolId")
		pl = events.PoolDebited{PoolID: id, ActionIDs: ids, Amount: amount}
	case "campaign.budget_debited":
		id, ids, amount := s.debit("campaignId")
		pl = events.CampaignBudgetDebited{CampaignID: id, ActionIDs: ids, Amount: amount}
	default:
		return nil, false
	}
	s.ws()
	if !s.ok || s.i != len(s.b) {
		return nil, false
	}
	return pl, true
}

// jscan reads the plain JSON decodeHot accepts; ok turns false, for
// good, at the first thing outside it.
type jscan struct {
	b  []byte
	i  int
	ok bool
}

func (s *jscan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips whitespace and consumes c if it comes next.
func (s *jscan) next(c byte) bool {
	s.ws()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads an object whose every member field reads, returning the
// member's bit; a repeated bit fails.
func (s *jscan) object(field func(key string) uint32) {
	if !s.ok || !s.next('{') {
		s.ok = false
		return
	}
	if s.next('}') {
		return
	}
	var seen uint32
	for s.ok {
		s.ws()
		key := s.str()
		if !s.ok || !s.next(':') {
			s.ok = false
			return
		}
		s.ws()
		bit := field(key)
		if seen&bit != 0 {
			s.ok = false
		}
		seen |= bit
		if s.next(',') {
			continue
		}
		if !s.next('}') {
			s.ok = false
		}
		return
	}
}

// str reads a string of printable ASCII without escapes.
func (s *jscan) str() string {
	if !s.ok || s.i >= len(s.b) || s.b[s.i] != '"' {
		s.ok = false
		return ""
	}
	start := s.i + 1
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			s.i = j + 1
			return string(s.b[start:j])
		case c < 0x20 || c > 0x7e || c == '\\':
			s.ok = false
			return ""
		}
	}
	s.ok = false
	return ""
}

// int reads an integer as encoding/json does into an int64: no fraction,
// exponent or leading zero, within range.
func (s *jscan) int() int64 {
	if !s.ok {
		return 0
	}
	start := s.i
	j := s.i
	if j < len(s.b) && s.b[j] == '-' {
		j++
	}
	digits := j
	for j < len(s.b) && s.b[j] >= '0' && s.b[j] <= '9' {
		j++
	}
	if j == digits || (s.b[digits] == '0' && j-digits > 1) || (j < len(s.b) && (s.b[j] == '.' || s.b[j] == 'e' || s.b[j] == 'E')) {
		s.ok = false
		return 0
	}
	n, err := strconv.ParseInt(string(s.b[start:j]), 10, 64)
	if err != nil {
		s.ok = false
		return 0
	}
	s.i = j
	return n
}

// strs reads an array of strings (never null: a null fails).
// debit reads the body both debits share: {idKey, "actionIds", "amount"}.
func (s *jscan) debit(idKey string) (id string, ids []string, amount int64) {
	s.object(func(key string) uint32 {
		switch key {
		case idKey:
			id = s.str()
			return 1
		case "actionIds":
			ids = s.strs()
			return 1 << 1
		case "amount":
			amount = s.int()
			return 1 << 2
		}
		s.ok = false
		return 0
	})
	return id, ids, amount
}

func (s *jscan) strs() []string {
	if !s.ok || !s.next('[') {
		s.ok = false
		return nil
	}
	out := []string{}
	if s.next(']') {
		return out
	}
	for s.ok {
		s.ws()
		out = append(out, s.str())
		if s.next(',') {
			continue
		}
		if !s.next(']') {
			s.ok = false
		}
		break
	}
	return out
}

// rewards reads an array of stakeholder objects.
func (s *jscan) rewards() []events.ActionReward {
	if !s.ok || !s.next('[') {
		s.ok = false
		return nil
	}
	out := []events.ActionReward{}
	if s.next(']') {
		return out
	}
	for s.ok {
		var r events.ActionReward
		s.ws()
		s.object(func(key string) uint32 {
			switch key {
			case "stakeholderTypeCode":
				r.StakeholderTypeCode = s.str()
				return 1
			case "partnerUserId":
				r.PartnerUserID = s.str()
				return 1 << 1
			case "userId":
				r.UserID = s.str()
				return 1 << 2
			case "tokens":
				r.Tokens = s.int()
				return 1 << 3
			case "transactionId":
				r.TransactionID = s.str()
				return 1 << 4
			}
			s.ok = false
			return 0
		})
		out = append(out, r)
		if s.next(',') {
			continue
		}
		if !s.next(']') {
			s.ok = false
		}
		break
	}
	return out
}

// raw reads an object, kept as its bytes as json.RawMessage keeps them;
// anything but a plain object of plain members fails.
func (s *jscan) raw() json.RawMessage {
	start := s.i
	s.skipObject(0)
	if !s.ok {
		return nil
	}
	return json.RawMessage(s.b[start:s.i:s.i])
}

// skipObject skips an object whose values are plain strings, integers,
// booleans, or such objects and arrays, nested at most 32 deep.
func (s *jscan) skipObject(depth int) {
	if depth > 32 {
		s.ok = false
		return
	}
	s.object(func(string) uint32 {
		s.skipValue(depth + 1)
		return 0 // repeated keys are json's business here: RawMessage keeps them
	})
}

func (s *jscan) skipValue(depth int) {
	if !s.ok || s.i >= len(s.b) {
		s.ok = false
		return
	}
	switch c := s.b[s.i]; {
	case c == '{':
		s.skipObject(depth)
	case c == '[':
		s.i++
		if s.next(']') {
			return
		}
		for s.ok {
			s.ws()
			s.skipValue(depth + 1)
			if s.next(',') {
				continue
			}
			if !s.next(']') {
				s.ok = false
			}
			return
		}
	case c == '"':
		s.str()
	case c == '-' || (c >= '0' && c <= '9'):
		s.int()
	case hasPrefix(s.b[s.i:], "true"):
		s.i += 4
	case hasPrefix(s.b[s.i:], "false"):
		s.i += 5
	default:
		s.ok = false
	}
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// appendRewardsJSON is json.Marshal of rs for rs from a plain payload
// (strings that need no escaping): the same JSON, so the same jsonb.
func appendRewardsJSON(dst []byte, rs []events.ActionReward) []byte {
	if rs == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, r := range rs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, `{"stakeholderTypeCode":"`...)
		dst = append(dst, r.StakeholderTypeCode...)
		dst = append(dst, `","partnerUserId":"`...)
		dst = append(dst, r.PartnerUserID...)
		dst = append(dst, `","userId":"`...)
		dst = append(dst, r.UserID...)
		dst = append(dst, `","tokens":`...)
		dst = strconv.AppendInt(dst, r.Tokens, 10)
		if r.TransactionID != "" {
			dst = append(dst, `,"transactionId":"`...)
			dst = append(dst, r.TransactionID...)
			dst = append(dst, '"')
		}
		dst = append(dst, '}')
	}
	return append(dst, ']')
}

// appendStringsJSON is json.Marshal of ss for plain strings.
func appendStringsJSON(dst []byte, ss []string) []byte {
	if ss == nil {
		return append(dst, "null"...)
	}
	dst = append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '"')
		dst = append(dst, s...)
		dst = append(dst, '"')
	}
	return append(dst, ']')
}
