"""Opens the stores, composes the addons (`compose`), runs mitmproxy and the review API on one
event loop in one process, and closes the stores when they stop."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from pathlib import Path

from cryptography.fernet import Fernet
from mitmproxy import exceptions
from mitmproxy.certs import CertStore
from mitmproxy.options import Options
from mitmproxy.tools.dump import DumpMaster

from connectors_schemas import Connector
from proxy_addon.builtins import prune_idle
from proxy_addon.compose import Stores, compose
from proxy_addon.config import HitlConfig
from proxy_addon.fold import HookFold
from proxy_addon.layers import UnsafeOptionError, check_options
from proxy_addon.review_server import ReviewServer
from proxy_addon.sealing import (
    KEY_ENV,
    KEY_FILE,
    Sealer,
    SealError,
    audit_key,
    key_location_warning,
    load_key,
    load_or_create_key,
)
from proxy_addon.settings import RunSettings, store_problem
from review_api.store import ApprovalStore, StoreError, store_from_url
from review_api.traffic import TrafficError, TrafficStore, traffic_store_from_url

__all__ = ["StartupError", "close_stores", "open_stores", "open_traffic_store", "serve"]

logger = logging.getLogger("hitl_proxy")


class StartupError(RuntimeError):
    """Something `run` needs at start-up failed (store, key, certs, options): exit 2, one line."""


def _configure_logging() -> None:
    """As mitmdump does: mitmproxy's termlog filters by --set termlog_verbosity."""
    logging.getLogger().setLevel(logging.DEBUG)
    for noisy in ("asyncio", "hpack", "aiosqlite", "httpcore", "httpx", "psycopg",
                  "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _problem(settings: RunSettings, exc: BaseException | str) -> str:
    return store_problem(settings.store_url, settings.data_dir, exc)


def _store(settings: RunSettings, config: HitlConfig, key: bytes) -> ApprovalStore:
    try:
        return store_from_url(settings.store_url, settings.data_dir, audit_key=audit_key(key),
                              busy_timeout=config.limits.store_timeout,
                              lease=config.limits.replica_lease)
    except (StoreError, ValueError) as exc:
        raise StartupError(_problem(settings, exc)) from exc


async def _seal_key(settings: RunSettings, config: HitlConfig) -> bytes:
    """The key that seals held requests and keys the audit chain; every replica of one store
    must hold the same one. A shared store's first replica creates it in its data dir; a
    replica without one, on a store whose audit log has entries, refuses to start rather than
    sign the shared chain with a key of its own."""
    if settings.store_url is None or os.environ.get(KEY_ENV):
        return load_or_create_key(settings.data_dir)
    try:
        return load_key(settings.data_dir)
    except SealError:
        pass
    probe = _store(settings, config, Fernet.generate_key())
    try:
        await probe.open()
        head = await probe.audit_head()
    finally:
        await probe.close()
    if head is not None:
        raise StartupError(_problem(
            settings, f"its audit log is signed with another replica's key and "
            f"{settings.data_dir / KEY_FILE} does not exist: copy {KEY_FILE} from that "
            f"replica's data dir (or set {KEY_ENV} to the same key) on every replica"))
    key = load_or_create_key(settings.data_dir)
    logger.warning("created %s for a shared store: copy it to every other replica's data dir "
                   "(or set %s to it on all of them) before starting them",
                   settings.data_dir / KEY_FILE, KEY_ENV)
    return key


def open_traffic_store(url: str | None, data_dir: Path, config: HitlConfig) -> TrafficStore:
    """The traffic record that goes with the store: its own file in the data dir, or the
    PostgreSQL database. Not opened yet: `run` opens it for writing, `traffic export`
    read-only."""
    return traffic_store_from_url(url, data_dir, max_file_bytes=config.traffic.max_file_size,
                                  busy_timeout=config.limits.store_timeout)


async def open_stores(settings: RunSettings, config: HitlConfig) -> Stores:
    """The approvals store, the traffic record and the sealer, opened; StartupError naming the
    store (URL without password) when any of them cannot be."""
    try:
        seal_key = await _seal_key(settings, config)
        sealer = Sealer(seal_key)
    except (SealError, OSError) as exc:
        raise StartupError(str(exc)) from exc
    except StoreError as exc:
        raise StartupError(_problem(settings, exc)) from exc
    store = _store(settings, config, seal_key)
    traffic: TrafficStore | None = None
    try:
        await store.open()
        traffic = open_traffic_store(settings.store_url, settings.data_dir, config)
        await traffic.open()
    except (StoreError, TrafficError, ValueError, OSError) as exc:
        await store.close()
        if traffic is not None:
            await traffic.close()
        raise StartupError(_problem(settings, exc)) from exc
    return Stores(approvals=store, traffic=traffic, sealer=sealer)


async def close_stores(stores: Stores) -> None:
    try:
        await stores.traffic.close()
    finally:
        await stores.approvals.close()


async def serve(settings: RunSettings, config: HitlConfig, connectors: dict[str, Connector],
                review_socket: socket.socket, token_note: str) -> int:
    """Run until SIGINT or SIGTERM (exit 0); StartupError before anything serves."""
    _configure_logging()
    try:
        stores = await open_stores(settings, config)
    except StartupError:
        review_socket.close()
        raise
    try:
        return await _run(settings, config, connectors, stores, review_socket, token_note)
    finally:
        await close_stores(stores)


async def _run(settings: RunSettings, config: HitlConfig, connectors: dict[str, Connector],
               stores: Stores, review_socket: socket.socket, token_note: str) -> int:
    try:
        settings.certs_dir.mkdir(parents=True, exist_ok=True)
        CertStore.from_store(settings.certs_dir, "mitmproxy", 2048)
        composition = compose(settings, config, connectors, stores, token_note=token_note)
    except OSError as exc:
        review_socket.close()
        raise StartupError(str(exc)) from exc
    opts = Options(listen_host=settings.listen_host, listen_port=settings.listen_port,
                   mode=[settings.mode], confdir=str(settings.certs_dir))
    master = DumpMaster(opts, with_termlog=True, with_dumper=False)
    review = ReviewServer(composition.review_app.app, review_socket, composition.ready,
                          composition.review_app.broadcaster.closing)
    # One addon for mitmproxy to dispatch to (proxy_addon/fold.py): same order, same errors.
    master.addons.add(HookFold(*composition.addons, review))
    try:
        opts.update(**composition.options)
        if settings.sets:
            opts.set(*settings.sets)
        check_options(opts)
    except (exceptions.OptionsError, UnsafeOptionError) as exc:
        review_socket.close()
        raise StartupError(f"--set: {exc}" if isinstance(exc, exceptions.OptionsError)
                           else str(exc)) from exc
    # After --set: built-ins whose options are all at defaults leave the chain; `idle` (kept
    # referenced until the run ends) puts one back if its option is set later.
    idle = prune_idle(master)
    logger.debug("mitmproxy addons left out (options at defaults): %s", ", ".join(idle.names))

    if warning := key_location_warning(settings.data_dir):
        logger.warning(warning)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, master.shutdown)
    await master.run()
    return 0
