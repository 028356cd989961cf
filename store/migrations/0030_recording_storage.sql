-- Recording storage per organization: each recording's size on disk (measured once the call has ended),
-- and why a call has no recording when policy decided it (quota full when it was answered, or deleted
-- after the retention period). recording_status NULL: nothing to say (recorded, or not asked for).
ALTER TABLE calls ADD COLUMN recording_bytes bigint;
ALTER TABLE calls ADD COLUMN recording_status text
    CHECK (recording_status IN ('skipped_quota', 'deleted_retention'));
CREATE INDEX calls_recordings_by_org ON calls (org_id) WHERE recording_path IS NOT NULL;
CREATE INDEX calls_recordings_by_end ON calls (ended_at) WHERE recording_path IS NOT NULL;
