"""Knowledge base models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AfterValidator, Field, model_validator

from .common import QueryModel, RequestModel, ResponseModel, Url

MAX_TEXT_CHARS = 200_000


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


KbName = Annotated[str, Field(min_length=1, max_length=40), AfterValidator(_not_blank)]


class TextSource(RequestModel):
    title: Annotated[str, Field(max_length=200)] = ""
    text: Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS), AfterValidator(_not_blank)]


Texts = Annotated[list[TextSource], Field(max_length=100, description="[{title, text}] text sources")]
Urls = Annotated[list[Url], Field(max_length=50, description="Pages to fetch (HTML or plain text)")]


class SourcesAdd(RequestModel):
    knowledge_base_texts: Texts = Field(default_factory=list)
    knowledge_base_urls: Urls = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> SourcesAdd:
        if not self.knowledge_base_texts and not self.knowledge_base_urls:
            raise ValueError("give knowledge_base_texts or knowledge_base_urls")
        return self


class KnowledgeBaseCreate(RequestModel):
    knowledge_base_name: KbName
    knowledge_base_texts: Texts = Field(default_factory=list)
    knowledge_base_urls: Urls = Field(default_factory=list)
    enable_auto_refresh: bool = Field(False, description="Re-fetch URL sources every 12 hours.")


class KnowledgeBaseQuery(QueryModel):
    limit: int = Field(50, ge=1, le=1000)
    offset: int = Field(0, ge=0, le=10_000_000)
    status: Literal["in_progress", "complete", "error"] | None = None


class SourceOut(ResponseModel):
    source_id: UUID
    type: Literal["text", "url"]
    title: str
    url: str | None
    status: Literal["pending", "in_progress", "complete", "error"]
    error_message: str | None
    chunk_count: int
    fetched_at: datetime | None
    created_at: datetime


class KnowledgeBaseOut(ResponseModel):
    id: UUID
    knowledge_base_id: UUID
    knowledge_base_name: str
    status: Literal["in_progress", "complete", "error"]
    error_message: str | None = Field(None, description="Why ingestion failed (per failed source).")
    enable_auto_refresh: bool
    chunk_count: int
    knowledge_base_sources: list[SourceOut]
    created_at: datetime
    updated_at: datetime


class SearchRequest(RequestModel):
    query: Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_not_blank)]
    top_k: int = Field(5, ge=1, le=50)
    threshold: float = Field(0.7, ge=0, le=1, description="Minimum cosine similarity (0–1).")


class ResultSource(ResponseModel):
    source_id: UUID
    type: Literal["text", "url"]
    title: str
    url: str | None


class SearchResult(ResponseModel):
    chunk_id: str
    text: str
    similarity: float = Field(description="Cosine similarity between the query and the chunk.")
    chunk_index: int
    source: ResultSource


class SearchOut(ResponseModel):
    knowledge_base_id: UUID
    query: str
    results: list[SearchResult]
    context_text: str
    retrieval_ms: float
