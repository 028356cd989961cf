"""Knowledge-base benchmark: ingestion throughput and query latency at 10,000 chunks, and retrieval accuracy.

    make bench-knowledge                         # or: python -m bench.knowledge --chunks 10000 --queries 300

Runs the real path in-process: PostgreSQL (DATABASE_URL, else an embedded one under /tmp), the knowledge
service (chunking, all-MiniLM-L6-v2 embeddings in its executor, chromadb embedded in a temporary
directory). Prints:
- model load time and raw embedding rate;
- ingestion: sources of 100 paragraphs each until ``--chunks`` chunks, from schedule to all complete
  (chunks/s, including chunking, embedding, chroma writes and the status rows);
- query latency over that collection (``search``, top_k=5: embed the question + nearest neighbours) and of
  the retrieval answerer (adds the sentence pick), p50/p99;
- accuracy on bench/data/knowledge_riverton.json (56 paragraphs, 49 paraphrased questions): top-1 and top-3,
  and at the retrieval engine's answer threshold how many questions get an answer (right or wrong) and how
  many off-topic questions wrongly do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

DATA = Path(__file__).parent / "data" / "knowledge_riverton.json"


def percentile(values: list[float], p: float) -> float:
    return float(np.percentile(np.asarray(values), p))


def synthetic_sources(n_chunks: int, per_source: int, seed: int = 7) -> list[dict[str, str]]:
    """Texts whose paragraphs (60–100 words of whole sentences) each become one chunk."""
    rng = random.Random(seed)
    words = sorted({w.strip(".,").lower() for p in json.loads(DATA.read_text())["paragraphs"]
                    for w in p["text"].split() if w.isalpha() and len(w) > 2})
    sources = []
    made = 0
    while made < n_chunks:
        paragraphs = []
        for _ in range(min(per_source, n_chunks - made)):
            target = rng.randint(60, 100)
            sentences, count = [], 0
            while count < target:
                n = rng.randint(8, 16)
                sentences.append(" ".join(rng.choice(words) for _ in range(n)).capitalize() + ".")
                count += n
            paragraphs.append(" ".join(sentences))
            made += 1
        sources.append({"title": f"Synthetic {len(sources)}", "text": "\n\n".join(paragraphs)})
    return sources


async def database() -> tuple[str, Any]:
    """A fresh database: in DATABASE_URL's server, or in an embedded PostgreSQL under /tmp."""
    import asyncpg

    from store.db import embedded_database_url

    admin = os.environ.get("DATABASE_URL") or await asyncio.get_running_loop().run_in_executor(
        None, embedded_database_url, Path(f"/tmp/sbbench-{os.getuid()}"))
    name = f"switchboard_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin)
    await conn.execute(f'CREATE DATABASE "{name}"')
    await conn.close()
    base, _, query = admin.partition("?")
    dsn = f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")

    async def drop() -> None:
        c = await asyncpg.connect(admin)
        await c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await c.close()

    return dsn, drop


async def ingest(service: Any, db: Any, org: Any, name: str, texts: list[dict[str, str]]) -> tuple[Any, list, float]:
    from store import knowledge as kb_store

    t0 = time.perf_counter()
    kb, sources = await kb_store.create(db, org, name, auto_refresh=False, texts=texts, urls=[])
    for s in sources:
        service.schedule(org, kb["id"], s["id"])
    await service.idle()
    elapsed = time.perf_counter() - t0
    record = await kb_store.knowledge_bases.get(db, org, kb["id"])
    if record["status"] != "complete":
        raise SystemExit(f"ingestion of {name} ended {record['status']}: {record['error_message']}")
    return kb["id"], sources, elapsed


async def run(args: argparse.Namespace) -> None:
    from agents.knowledge.answer import ANSWER_THRESHOLD
    from agents.knowledge.embedder import BATCH_SIZE, embedding_process, torch_threads
    from agents.knowledge.service import KnowledgeService
    from agents.knowledge.vectors import VectorStore
    from store import orgs
    from store.db import create_pool
    from store.migrate import migrate

    dsn, drop = await database()
    pool = await create_pool(dsn, min_size=1, max_size=8)
    tmp = Path(tempfile.mkdtemp(prefix="sb-bench-kb-"))
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
        org = (await orgs.get_or_create_org(pool, "bench"))[0]["id"]
        embedder = embedding_process()
        t0 = time.perf_counter()
        await embedder.load()
        load = time.perf_counter() - t0
        print(f"embedding model: all-MiniLM-L6-v2 ready in {load:.1f} s (its own process; {torch_threads()} "
              f"torch thread(s), {os.cpu_count()} cores)")
        sample = [s for src in synthetic_sources(128, 128, seed=1) for s in src["text"].split("\n\n")]
        t0 = time.perf_counter()
        for start in range(0, len(sample), BATCH_SIZE):
            await embedder.embed(sample[start:start + BATCH_SIZE])
        raw = len(sample) / (time.perf_counter() - t0)
        print(f"raw embedding rate (batches of {BATCH_SIZE}, 60-100-word chunks): {raw:.0f} chunks/s")

        service = KnowledgeService(pool, VectorStore(path=tmp / "chroma"))
        await service.start()
        try:
            await accuracy(service, pool, org, ANSWER_THRESHOLD)
            await scale(service, pool, org, args)
        finally:
            await service.stop()
    finally:
        await pool.close()
        await drop()
        shutil.rmtree(tmp, ignore_errors=True)


async def accuracy(service: Any, db: Any, org: Any, threshold: float) -> None:
    data = json.loads(DATA.read_text())
    paragraphs = data["paragraphs"]
    kb_id, sources, elapsed = await ingest(service, db, org, "Riverton",
                                           [{"title": p["title"], "text": p["text"]} for p in paragraphs])
    para_of = {s["id"]: p["id"] for s, p in zip(sources, paragraphs, strict=True)}
    top1 = top3 = answered = answered_right = 0
    best_right: list[float] = []
    misses = []
    for item in data["questions"]:
        hits = await service.search(org, [kb_id], item["q"], top_k=3)
        ranked = [para_of[h.match.source_id] for h in hits]
        top1 += ranked[:1] == [item["answer"]]
        top3 += item["answer"] in ranked
        if hits and hits[0].match.similarity >= threshold:
            answered += 1
            answered_right += ranked[0] == item["answer"]
        if ranked[:1] == [item["answer"]]:
            best_right.append(hits[0].match.similarity)
        else:
            misses.append(f"    {item['q']!r}: expected {item['answer']}, got {ranked[:3]}")
    off_best = []
    for q in data["off_topic"]:
        hits = await service.search(org, [kb_id], q, top_k=1)
        off_best.append(hits[0].match.similarity if hits else 0.0)
    n = len(data["questions"])
    print(f"\naccuracy: {len(paragraphs)} paragraphs (ingested in {elapsed:.2f} s), {n} questions")
    print(f"  top-1 {top1 / n:.1%} ({top1}/{n})   top-3 {top3 / n:.1%} ({top3}/{n})")
    print(f"  similarity of the right best match: median {statistics.median(best_right):.2f}, "
          f"min {min(best_right):.2f}; off-topic best: median {statistics.median(off_best):.2f}, "
          f"max {max(off_best):.2f}")
    print(f"  at the answer threshold {threshold:.2f}: {answered}/{n} questions answered "
          f"({answered_right} with the right paragraph), off-topic answered "
          f"{sum(s >= threshold for s in off_best)}/{len(off_best)}")
    if misses:
        print("  top-1 misses:\n" + "\n".join(misses))


async def scale(service: Any, db: Any, org: Any, args: argparse.Namespace) -> None:
    texts = synthetic_sources(args.chunks, args.per_source)
    print(f"\ningestion: {len(texts)} sources, {args.chunks} chunks ...", flush=True)
    kb_id, _sources, elapsed = await ingest(service, db, org, "Scale", texts)
    stored = service.vectors.count(org, kb_id)
    print(f"  {stored} chunks in {elapsed:.1f} s: {stored / elapsed:.0f} chunks/s "
          f"(chunking + embedding + chroma + status rows)")

    data = json.loads(DATA.read_text())
    questions = [q["q"] for q in data["questions"]] + data["off_topic"]
    rng = random.Random(3)
    latencies, answer_latencies = [], []
    answer = service.answerer(org, [kb_id])
    for i in range(args.queries):
        q = questions[i % len(questions)] if i % 2 else " ".join(rng.sample(questions, 2))
        t0 = time.perf_counter()
        await service.search(org, [kb_id], q, top_k=5)
        latencies.append((time.perf_counter() - t0) * 1000)
        if i < args.queries // 2:
            t0 = time.perf_counter()
            await answer(q)
            answer_latencies.append((time.perf_counter() - t0) * 1000)
    print(f"query latency at {stored} chunks ({len(latencies)} queries, top_k=5): "
          f"p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms")
    print(f"retrieval answerer latency ({len(answer_latencies)} questions): "
          f"p50 {percentile(answer_latencies, 50):.1f} ms, p99 {percentile(answer_latencies, 99):.1f} ms")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=10_000, help="chunks in the scale collection")
    parser.add_argument("--per-source", type=int, default=100, help="chunks per source")
    parser.add_argument("--queries", type=int, default=300, help="queries timed at scale")
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
