-- Every failed call says why: the engine's own words (SIP reason phrase or local error) beside the
-- machine-readable disconnection_reason.
ALTER TABLE calls ADD COLUMN error_message text;
-- POST /calls/{id}/end on a call another worker runs: that worker reads the request and hangs up.
ALTER TABLE calls ADD COLUMN hangup_requested text;
-- Crash recovery: the last write to the call's recording (media evidence), read from the file at restart.
ALTER TABLE calls ADD COLUMN last_media_at timestamptz;
CREATE INDEX calls_hangup_requested ON calls (worker_id) WHERE hangup_requested IS NOT NULL;
-- Ownerless rows (strangers' refused INVITEs, written by earlier versions) expire.
CREATE INDEX calls_ownerless ON calls (created_at) WHERE org_id IS NULL;
