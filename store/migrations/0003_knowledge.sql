-- Knowledge bases: their sources and ingestion state. The chunks and their vectors live in chromadb
-- (one collection per knowledge base); PostgreSQL keeps what the API shows and what ingestion resumes.

CREATE TABLE knowledge_bases (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id               uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    name                 text NOT NULL,
    status               text NOT NULL DEFAULT 'in_progress' CHECK (status IN ('in_progress', 'complete', 'error')),
    error_message        text,
    enable_auto_refresh  boolean NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX knowledge_bases_org ON knowledge_bases (org_id, created_at DESC);

CREATE TABLE knowledge_sources (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    org_id           uuid NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    kb_id            uuid NOT NULL REFERENCES knowledge_bases(id) ON DELETE CASCADE,
    type             text NOT NULL CHECK (type IN ('text', 'url')),
    title            text NOT NULL DEFAULT '',
    url              text,
    content          text,                 -- the text of a text source (URL sources are fetched)
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'in_progress', 'complete', 'error')),
    error_message    text,
    chunk_count      integer NOT NULL DEFAULT 0,
    content_hash     text,                 -- sha256 of the text last embedded (a refresh skips unchanged pages)
    fetched_at       timestamptz,          -- URL sources: last successful fetch
    next_refresh_at  timestamptz,          -- URL sources of auto-refreshing knowledge bases
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CHECK ((type = 'url') = (url IS NOT NULL))
);
CREATE INDEX knowledge_sources_kb ON knowledge_sources (kb_id, created_at);
CREATE INDEX knowledge_sources_pending ON knowledge_sources (status) WHERE status IN ('pending', 'in_progress');
CREATE INDEX knowledge_sources_refresh ON knowledge_sources (next_refresh_at) WHERE next_refresh_at IS NOT NULL;
