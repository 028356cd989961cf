-- Switchboard schema, version 1: tenants, keys, agents, trunks, numbers, calls and their history.

CREATE TABLE organizations (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name            text NOT NULL UNIQUE,
    webhook_secret  text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id        uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name          text NOT NULL DEFAULT '',
    key_prefix    text NOT NULL,
    key_hash      text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz
);
CREATE INDEX api_keys_org ON api_keys (org_id, created_at DESC);

CREATE TABLE agents (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name        text NOT NULL,
    enabled     boolean NOT NULL DEFAULT true,
    config      jsonb NOT NULL,          -- every other agent field, validated by the API models
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agents_org ON agents (org_id, created_at DESC);

CREATE TABLE trunks (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id                uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name                  text NOT NULL,
    host                  text NOT NULL,
    port                  integer NOT NULL DEFAULT 5060,
    transport             text NOT NULL DEFAULT 'udp' CHECK (transport IN ('udp', 'tcp', 'tls')),
    username              text,
    password_enc          text,            -- encrypted (store.crypto.SecretBox), never returned
    auth_username         text,
    realm                 text,
    register              boolean NOT NULL DEFAULT false,
    register_expires      integer NOT NULL DEFAULT 3600,
    outbound_proxy        text,
    from_domain           text,
    number_format         text NOT NULL DEFAULT 'e164' CHECK (number_format IN ('e164', 'no_plus', 'national')),
    dial_prefix           text NOT NULL DEFAULT '',
    max_concurrent_calls  integer,
    calls_per_second      double precision,
    inbound_cidrs         cidr[] NOT NULL DEFAULT '{}',
    codecs                text[] NOT NULL DEFAULT '{PCMU,PCMA}',
    rate_per_minute       numeric(12, 6),
    enabled               boolean NOT NULL DEFAULT true,
    reg_state             text NOT NULL DEFAULT 'unregistered',
    reg_last_error        text,
    reg_expires_at        timestamptz,
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX trunks_org ON trunks (org_id, created_at DESC);

CREATE TABLE numbers (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id      uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    number      text NOT NULL,
    trunk_id    uuid NOT NULL REFERENCES trunks(id) ON DELETE RESTRICT,
    agent_id    uuid REFERENCES agents(id) ON DELETE SET NULL,
    name        text NOT NULL DEFAULT '',
    status      text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'inactive')),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT numbers_number_key UNIQUE (number)   -- server-wide: an inbound call routes to one tenant
);
CREATE INDEX numbers_org ON numbers (org_id, created_at DESC);

CREATE TABLE calls (
    id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id                uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    direction             text NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    status                text NOT NULL DEFAULT 'pending'
                          CHECK (status IN ('pending', 'ringing', 'in_progress', 'completed', 'failed',
                                            'no_answer', 'busy', 'canceled')),
    to_number             text NOT NULL,
    from_number           text,
    agent_id              uuid REFERENCES agents(id) ON DELETE SET NULL,
    agent_name            text,
    agent_config          jsonb,           -- inline agent, or a snapshot for the call's lifetime
    trunk_id              uuid REFERENCES trunks(id) ON DELETE SET NULL,
    number_id             uuid REFERENCES numbers(id) ON DELETE SET NULL,
    record                boolean NOT NULL DEFAULT true,
    metadata              jsonb NOT NULL DEFAULT '{}',
    user_data             jsonb NOT NULL DEFAULT '{}',
    max_duration_seconds  integer,
    webhooks              jsonb NOT NULL DEFAULT '{}',
    started_at            timestamptz,
    answered_at           timestamptz,
    ended_at              timestamptz,
    hangup_cause          text,
    disconnection_reason  text,
    sip_call_id           text,
    sip_status            integer,
    recording_path        text,
    cost                  numeric(12, 6),
    metrics               jsonb NOT NULL DEFAULT '{}',
    worker_id             text,            -- the worker that owns the live call
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX calls_org_created ON calls (org_id, created_at DESC);
CREATE INDEX calls_pending ON calls (created_at) WHERE status = 'pending';
CREATE INDEX calls_active ON calls (org_id) WHERE status IN ('pending', 'ringing', 'in_progress');

CREATE TABLE call_events (
    id          bigserial PRIMARY KEY,
    call_id     uuid NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    status      text NOT NULL,
    detail      jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX call_events_call ON call_events (call_id, id);

CREATE TABLE transcript_turns (
    id           bigserial PRIMARY KEY,
    call_id      uuid NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    role         text NOT NULL CHECK (role IN ('agent', 'user', 'system', 'tool')),
    content      text NOT NULL,
    start_ms     integer,
    end_ms       integer,
    agent_name   text,
    tool_call    jsonb,
    interrupted  boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX transcript_turns_call ON transcript_turns (call_id, id);

CREATE TABLE provider_keys (
    id             uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id         uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    provider_type  text NOT NULL CHECK (provider_type IN ('stt', 'llm', 'tts')),
    provider_name  text NOT NULL,
    key_enc        text NOT NULL,
    key_masked     text NOT NULL,
    is_default     boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX provider_keys_org ON provider_keys (org_id, created_at DESC);
CREATE UNIQUE INDEX provider_keys_one_default ON provider_keys (org_id, provider_type) WHERE is_default;
