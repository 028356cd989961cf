-- Webhooks: the organization's default endpoint, one row per (event, endpoint) delivery with its retry
-- schedule and lease, every attempt, and the post-call reports (also the analyzer's durable job queue).

ALTER TABLE organizations
    ADD COLUMN webhook_url             text,
    ADD COLUMN webhook_events          text[],          -- NULL: every event
    ADD COLUMN webhook_secret_rotated_at timestamptz;

CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id           uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    outbox_id        bigint,                  -- the outbox row it came from (rows may be pruned later)
    call_id          uuid,                    -- no FK: the delivery log outlives a deleted call
    event            text NOT NULL,
    event_id         text NOT NULL,           -- in the body; the same on every retry
    url              text NOT NULL,
    method           text NOT NULL DEFAULT 'POST',
    headers          jsonb NOT NULL DEFAULT '[]',   -- [{key, value}] the user configured
    body             text NOT NULL,           -- frozen at dispatch: every attempt sends the same bytes
    source           text NOT NULL,           -- which setting chose the URL: call, task, agent, organization
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    locked_until     timestamptz,             -- a deliverer's lease; expired leases are claimed again
    locked_by        text,
    last_status_code integer,
    last_error       text,
    event_at         timestamptz NOT NULL,    -- when the event happened (the outbox row's time)
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (outbox_id, url)                   -- a re-dispatched outbox row never doubles a delivery
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_org ON webhook_deliveries (org_id, created_at DESC);
CREATE INDEX webhook_deliveries_call ON webhook_deliveries (call_id);

CREATE TABLE webhook_attempts (
    id           bigserial PRIMARY KEY,
    delivery_id  uuid NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    worker       text NOT NULL,
    started_at   timestamptz NOT NULL,
    duration_ms  double precision NOT NULL,
    status_code  integer,
    error        text,
    response     text                     -- the first 500 characters of the receiver's answer
);
CREATE INDEX webhook_attempts_delivery ON webhook_attempts (delivery_id, id);

CREATE TABLE call_reports (
    call_id       uuid PRIMARY KEY REFERENCES calls(id) ON DELETE CASCADE,
    org_id        uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done')),
    attempts      integer NOT NULL DEFAULT 0,
    locked_until  timestamptz,
    report        jsonb,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    updated_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX call_reports_pending ON call_reports (created_at) WHERE status = 'pending';
