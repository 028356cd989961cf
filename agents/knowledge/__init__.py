"""Knowledge bases: chunking, embeddings (all-MiniLM-L6-v2), the chromadb vector store, URL fetching,
background ingestion and refresh, and the retrieval answerer.

The server installs its one ``KnowledgeService`` here at start; a call's runtime asks ``answerer_for``
for the agent's knowledge lookup. Importing this package loads no model and no database client.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

if TYPE_CHECKING:
    from .service import KnowledgeService

_service: KnowledgeService | None = None


def install(service: KnowledgeService) -> None:
    """Make ``service`` the process's knowledge service."""
    global _service
    _service = service


def uninstall(service: KnowledgeService) -> None:
    global _service
    if _service is service:
        _service = None


def current() -> KnowledgeService | None:
    return _service


def answerer_for(org_id: Any, kb_ids: Sequence[Any] | None) -> Callable[[str], Awaitable[str | None]] | None:
    """The knowledge lookup of an agent of ``org_id`` with these knowledge bases, or None when it has
    none (or no knowledge service runs in this process)."""
    if _service is None or org_id is None or not kb_ids:
        return None
    return _service.answerer(UUID(str(org_id)), [UUID(str(k)) for k in kb_ids])
