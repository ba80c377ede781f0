-- An endpoint is disabled when it has been failing for DisableAfter. A
-- streak measured only from "the first failure since the last success"
-- stretched across quiet spells: an endpoint that failed once a month ago,
-- saw no traffic since, and answered one 503 today counted as failing for
-- a month. last_failure_at lets a failure after a long silence start a
-- new streak.
ALTER TABLE webhook_endpoints ADD COLUMN last_failure_at timestamptz;
