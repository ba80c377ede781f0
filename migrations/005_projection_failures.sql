-- A projection that cannot apply an event retries it forever (skipping it
-- would make the read model silently wrong). These columns make such a
-- stall visible to `ledgerctl projections status`: the last error, and
-- since when the projection has been failing. Both are cleared in the
-- transaction that next moves the checkpoint.
ALTER TABLE projection_checkpoints
    ADD COLUMN last_error    text,
    ADD COLUMN failing_since timestamptz;
