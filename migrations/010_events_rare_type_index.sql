-- events_type_position_idx took an entry for every event appended, yet
-- only a few rare types are ever looked up by type: the key and partner
-- events (the accounts revision every signed request reads, and the key
-- cache's fold, httpapi) and the allocation requests and decisions
-- (ledgerctl pools). A partial index over those types alone serves each of
-- those lookups the same way, (event_type, position), and costs the hot
-- appends (actions, pool debits) nothing but the predicate check.
--
-- A query by type must name its types as literals, so the planner can
-- prove they fall inside this predicate; a type added to those lookups
-- must be added here too (httpapi's TestLookupsByEventTypeUseTheRareTypeIndex
-- fails otherwise).
CREATE INDEX events_rare_type_position_idx ON events (event_type, position)
    WHERE event_type IN ('partner.registered', 'partner.approved', 'partner.suspended', 'partner.tier_changed',
                         'apikey.created', 'apikey.updated', 'apikey.revoked',
                         'pool.allocation_requested', 'pool.allocation_approved', 'pool.allocation_rejected');
DROP INDEX events_type_position_idx;
