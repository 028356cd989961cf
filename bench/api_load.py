"""API load benchmark: one server worker on loopback, an aiohttp load generator in another process.

    python -m bench.api_load [--seconds 10] [--concurrency 32]

Prints requests/second and p50/p99 latency for GET /api/v1/calls/{id} and POST /api/v1/calls, and the
same for GET /api/v1/health (no auth, no database) as a reference measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int) -> tuple[subprocess.Popen, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}
    env.update(SWITCHBOARD_DATA_DIR=str(data_dir), SWITCHBOARD_API_HOST="127.0.0.1",
               SWITCHBOARD_API_PORT=str(port), SWITCHBOARD_RATE_LIMIT=str(10**9),
               SWITCHBOARD_SIP_HOST="127.0.0.1", SWITCHBOARD_SIP_PORT=str(_free_port()))
    proc = subprocess.Popen([sys.executable, "-m", "switchboard.cli", "serve"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    banner = []
    for line in proc.stdout:
        banner.append(line)
        if line.startswith("Press Ctrl+C"):
            break
    match = re.search(r"\b(sb_[A-Za-z0-9_\-]{40,})", "".join(banner))
    if not match:
        proc.kill()
        raise SystemExit("server did not print a demo API key (is the data dir fresh?)\n" + "".join(banner))
    return proc, match[1]


async def run_load(session: aiohttp.ClientSession, method: str, url: str, body: dict | None, seconds: float,
                   concurrency: int) -> tuple[int, int, np.ndarray]:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            async with session.request(method, url, json=body) as resp:
                await resp.read()
                if resp.status >= 400:
                    errors += 1
            latencies.append(time.perf_counter() - t0)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - start
    lat = np.array(latencies) * 1000
    return int(len(lat) / elapsed), errors, lat


async def main_async(args: argparse.Namespace) -> None:
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="sbb", dir="/tmp") as tmp:
        proc, key = start_server(Path(tmp), port)
        try:
            base = f"http://127.0.0.1:{port}/api/v1"
            headers = {"Authorization": f"Bearer {key}"}
            conn = aiohttp.TCPConnector(limit=args.concurrency)
            async with aiohttp.ClientSession(headers=headers, connector=conn) as session:
                async with session.get(f"{base}/agents") as resp:
                    agent_id = (await resp.json())["data"][0]["id"]
                create = {"to_number": "sip:bench@127.0.0.1:5999", "agent_id": agent_id, "metadata": {"bench": 1}}
                async with session.post(f"{base}/calls", json=create) as resp:
                    call_id = (await resp.json())["data"]["call_id"]
                # warm-up
                await run_load(session, "GET", f"{base}/calls/{call_id}", None, 1.0, args.concurrency)
                runs = [
                    ("GET /health (reference)", "GET", f"{base}/health", None),
                    ("GET /calls/{id}", "GET", f"{base}/calls/{call_id}", None),
                    ("POST /calls", "POST", f"{base}/calls", create),
                ]
                print(f"one server worker, {args.concurrency} concurrent clients, {args.seconds:.0f} s per endpoint")
                print(f"{'endpoint':26} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'vs ref':>7}")
                ref = None
                for name, method, url, body in runs:
                    rps, errors, lat = await run_load(session, method, url, body, args.seconds, args.concurrency)
                    ref = ref or rps
                    print(f"{name:26} {rps:8d} {np.percentile(lat, 50):8.2f} {np.percentile(lat, 99):8.2f} "
                          f"{errors:7d} {rps / ref:7.2f}")
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
