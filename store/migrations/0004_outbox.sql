-- The outbox: every call event (status change, transcript turn, DTMF, transfer…) gets a row here in the
-- same transaction as the state it describes. It is the durable source of truth for webhooks, live
-- transcript sockets and other workers; NOTIFY on channel 'switchboard_events' (payload: the row id) only
-- wakes readers, who then read the rows themselves.
CREATE TABLE outbox (
    id             bigserial PRIMARY KEY,
    org_id         uuid REFERENCES organizations(id) ON DELETE CASCADE,
    call_id        uuid REFERENCES calls(id) ON DELETE CASCADE,
    event          text NOT NULL,
    payload        jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    dispatched_at  timestamptz            -- set once the webhook dispatcher has made its deliveries
);
CREATE INDEX outbox_undispatched ON outbox (id) WHERE dispatched_at IS NULL;
CREATE INDEX outbox_call ON outbox (call_id, id);
