"""Knowledge bases: chunking, embeddings (all-MiniLM-L6-v2), the chromadb vector store, URL fetching,
background ingestion and refresh, and the retrieval answerer.

The server runs one ``KnowledgeService``; a call's runtime asks ``answerer_for(service, …)`` for the
agent's knowledge lookup. Importing this package loads no model and no database client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from .service import KnowledgeService

def answerer_for(service: KnowledgeService | None, org_id: Any,
                 kb_ids: Sequence[Any] | None) -> Callable[[str], Awaitable[str | None]] | None:
    """The knowledge lookup of an agent of ``org_id`` with these knowledge bases, or None when it has
    none (or there is no knowledge service)."""
    if service is None or org_id is None or not kb_ids:
        return None
    return service.answerer(UUID(str(org_id)), [UUID(str(k)) for k in kb_ids])
