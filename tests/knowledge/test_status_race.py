"""A knowledge base's status follows its sources, also when they finish at the same moment."""

from __future__ import annotations

import asyncio

from store import knowledge as kb_store
from store import orgs


async def test_status_recompute_waiting_on_the_row_counts_what_committed_meanwhile(db):
    org, _ = await orgs.get_or_create_org(db, "kb-race")
    kb, sources = await kb_store.create(db, org["id"], "race", auto_refresh=False, urls=[],
                                        texts=[{"title": "a", "text": "one"}, {"title": "b", "text": "two"}])
    async with db.acquire() as holder:
        tx = holder.transaction()
        await tx.start()
        await holder.execute("SELECT 1 FROM knowledge_bases WHERE id = $1 FOR UPDATE", kb["id"])  # another writer
        recompute = asyncio.create_task(kb_store.refresh_status(db, kb["id"]))  # a source finished: recompute
        await asyncio.sleep(0.2)  # it is now waiting on the row
        for s in sources:  # meanwhile both sources finish
            await kb_store.source_done(db, s["id"], chunk_count=1, content_hash="h", title=None, fetched=False,
                                       refresh_hours=None)
        await tx.commit()
    result = await asyncio.wait_for(recompute, 10)
    assert result["status"] == "complete"  # not the stale in_progress counted before the wait
