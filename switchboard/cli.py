"""The `switchboard` command: serve, migrate, api-key create."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

# Before numpy loads: one BLAS thread (the media tick's small products are slower when spread out).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

from .config import Settings


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    from .platform import logctx

    logctx.install()  # "[call=<id>]" on every line about a call


def _existing_database_url(settings: Settings) -> str:
    """DATABASE_URL, or the embedded database the server created in the data directory. Never a new
    empty one: a command that would make one says where it looked and stops (`NoDatabase`)."""
    from store.db import embedded_database_url

    return settings.database_url or embedded_database_url(settings.data_dir, create=False)


def _no_database_message(settings: Settings) -> str:
    return (
        f"switchboard: no Switchboard database in {settings.data_dir} (nothing was created).\n"
        "  The server keeps its data in SWITCHBOARD_DATA_DIR (default: $XDG_DATA_HOME/switchboard, else\n"
        "  ~/.local/share/switchboard). Start the server once (`make run` or `switchboard serve`), or run this\n"
        "  command with the same SWITCHBOARD_DATA_DIR (or DATABASE_URL) the server uses."
    )


async def _migrate(settings: Settings) -> None:
    from store.db import create_pool
    from store.migrate import migrate

    dsn = await asyncio.get_running_loop().run_in_executor(None, _existing_database_url, settings)
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            applied = await migrate(conn)
        print(f"migrations applied: {applied}" if applied else "database is up to date")
    finally:
        await pool.close()


async def _create_key(settings: Settings, org_name: str, key_name: str) -> None:
    from store import orgs
    from store.db import create_pool
    from store.migrate import migrate

    dsn = await asyncio.get_running_loop().run_in_executor(None, _existing_database_url, settings)
    pool = await create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            async with conn.transaction():
                org, created = await orgs.get_or_create_org(conn, org_name)
                record, plain = await orgs.create_api_key(conn, org["id"], key_name)
        print(f"organization: {org['name']} ({org['id']}){' created' if created else ''}")
        print(f"api key id: {record['id']} (the key is shown once; store it now)")
        print(plain)
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switchboard", description="Self-hosted voice-AI telephony server.")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the server (API, SIP, media) on the configured or embedded defaults")
    sub.add_parser("migrate", help="apply database migrations and exit")
    keys = sub.add_parser("api-key", help="manage API keys").add_subparsers(dest="action", required=True)
    create = keys.add_parser("create", help="create an API key; the plain key is printed alone on the last line")
    create.add_argument("--org", required=True, help="organization name (created when missing)")
    create.add_argument("--name", default="", help="a label for the key")
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        parser.error(str(exc))
    if args.command == "serve":
        from .server import serve

        try:
            import uvloop

            uvloop.install()
        except ImportError:
            pass
        try:
            asyncio.run(serve(settings))
        except KeyboardInterrupt:  # Ctrl-C before the server installed its own handler: nothing to drain
            print("stopped", file=sys.stderr)
            return 130
        return 0
    from store.db import NoDatabase

    try:
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "api-key":
            asyncio.run(_create_key(settings, args.org, args.name))
    except NoDatabase:
        print(_no_database_message(settings), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
