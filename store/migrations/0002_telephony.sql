-- Telephony: every inbound INVITE leaves a row, even one for a number no tenant owns.

-- An INVITE for an unknown number belongs to no organization; it is still recorded (never visible
-- through the tenant API, which always filters by organization).
ALTER TABLE calls ALTER COLUMN org_id DROP NOT NULL;
ALTER TABLE calls ADD COLUMN sip_source text;        -- host:port the INVITE came from
ALTER TABLE calls ADD COLUMN engine_call_id text;    -- the SIP engine's id for the live call

-- Events other than status changes: received/sent DTMF, transfers, refusals.
ALTER TABLE call_events ADD COLUMN kind text NOT NULL DEFAULT 'status';
