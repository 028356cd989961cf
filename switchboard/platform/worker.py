"""A platform worker without HTTP or SIP: ``python -m switchboard.platform.worker --dsn URL``.

Runs the outbox listener, dispatcher, deliverer and analyzer (the same ``PlatformService`` every server
runs). Useful to add delivery capacity, and in tests to kill a worker mid-delivery.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from store.db import create_pool

from .deliverer import DeliveryPolicy
from .service import PlatformConfig, PlatformService


async def run(args: argparse.Namespace) -> None:
    pool = await create_pool(args.dsn, min_size=1, max_size=4)
    policy = DeliveryPolicy(timeout_seconds=args.timeout, lease_seconds=args.lease,
                            first_delay_seconds=args.first_delay)
    service = PlatformService(pool, PlatformConfig(dsn=args.dsn, worker=args.worker, base_url=args.base_url,
                                                   allow_private_urls=args.allow_private, policy=policy))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await service.start()
    print("platform worker ready", flush=True)
    try:
        await stop.wait()
    finally:
        await service.stop()
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--worker", default="platform-worker")
    parser.add_argument("--base-url", default="http://127.0.0.1:8080")
    parser.add_argument("--allow-private", action="store_true")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--lease", type=float, default=30.0)
    parser.add_argument("--first-delay", type=float, default=10.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
