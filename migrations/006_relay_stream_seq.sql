-- The relay records, beside its checkpoint, the JetStream sequence of the
-- last message it had acknowledged. It publishes each message expecting
-- the stream's last sequence to be exactly the one before, so the stream
-- is always an in-order prefix of the event store; comparing the stream's
-- last sequence with this column tells the relay, without reading a
-- message, whether the stream is as it left it, lost its tail, was
-- replaced, or holds acknowledgements the checkpoint missed (a crash
-- between acknowledgement and checkpoint write). 0 means unknown: the
-- relay then reads the stream's last message once.
ALTER TABLE relay_checkpoints ADD COLUMN stream_seq bigint NOT NULL DEFAULT 0;
