"""The simulator: one aiohttp application serving WS and REST on a single port."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

from aiohttp import web

from bybit_sim.account import Account
from bybit_sim.config import SimulatorConfig
from bybit_sim.connection import ConnectionRegistry
from bybit_sim.control import ControlApi
from bybit_sim.faults import Faults
from bybit_sim.firehose import Firehose
from bybit_sim.market import MarketHub, OptionMarket
from bybit_sim.private_ws import PrivateWs
from bybit_sim.public_ws import PublicWs
from bybit_sim.replay import load_replay
from bybit_sim.rest import RestApi
from bybit_sim.stats import SimStats
from bybit_sim.truth import GroundTruth, TruthTrade
from bybit_sim.ws_common import SocketServer

log = logging.getLogger(__name__)


class BybitSimulator:
    """A local Bybit V5 exchange: public/private WebSocket streams plus REST.

    ``await start()`` binds the port and starts the generators; ``await stop()`` (idempotent)
    closes every connection and cancels every background task.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config or SimulatorConfig()
        cfg = self.config
        self.stats = SimStats()
        self.ground_truth = GroundTruth(
            book_window_ms=round(cfg.book_truth_window_s * 1000),
            book_max_frames=cfg.book_truth_max_frames,
        )
        self.registry = ConnectionRegistry()
        seed = cfg.seed
        self._rng = random.Random(f"{seed}:sim") if seed is not None else random.Random()
        self.faults = Faults(self.registry, self.stats, self._rng)
        replay = load_replay(cfg.replay_file) if cfg.replay_file else None
        self.hub = MarketHub(cfg, self.ground_truth, replay)
        self.faults.attach_books(self.hub.book_streams)
        self.account = Account(self.hub, self.registry)
        self._stopping = asyncio.Event()
        sockets = SocketServer(cfg, self.registry, self.stats, self.faults, self._rng)
        self._public = PublicWs(cfg, sockets, self.stats, hub=self.hub)
        self._private = PrivateWs(cfg, sockets, self.stats)
        self._rest = RestApi(
            cfg, self.hub, self.account, self.ground_truth, self.faults, self.stats, self._stopping
        )
        self.firehose = Firehose(self.hub)
        self._control = ControlApi(self)
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self._started = False
        self._stopped = False

    # -- addresses ----------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("simulator not started")
        return self._port

    @property
    def rest_url(self) -> str:
        return f"http://{self._url_host}:{self.port}"

    @property
    def public_ws_url(self) -> str:
        """Template: ``.format(category="linear")``."""
        return f"ws://{self._url_host}:{self.port}/v5/public/{{category}}"

    @property
    def private_ws_url(self) -> str:
        return f"ws://{self._url_host}:{self.port}/v5/private"

    @property
    def _url_host(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", ""):
            return "127.0.0.1"
        return f"[{host}]" if ":" in host else host

    # -- lifecycle ----------------------------------------------------------------------
    def _build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._rest.middleware])
        app.router.add_get("/v5/public/{category}", self._public.handle)
        app.router.add_get("/v5/private", self._private.handle)
        app.add_routes(self._rest.routes())
        app.add_routes(self._control.routes())
        return app

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("simulator already started")
        self._started = True
        cfg = self.config
        self._runner = web.AppRunner(
            self._build_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port, reuse_address=True)
        await site.start()
        ports = [
            addr[1] for addr in self._runner.addresses if isinstance(addr, tuple) and len(addr) >= 2
        ]
        self._port = int(ports[0]) if ports else cfg.port
        self.hub.start()
        self.account.start()
        log.info("bybit-sim listening on %s", self.rest_url)

    async def stop(self) -> None:
        """Close connections, cancel generators, release the port. Idempotent."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        self._stopping.set()
        self.faults.release_held()
        await self.firehose.stop()
        await self.hub.stop()
        await self.account.stop()
        await asyncio.gather(*(c.close() for c in self.registry.all()), return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        log.info("bybit-sim stopped")

    async def __aenter__(self) -> BybitSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- helpers ------------------------------------------------------------------------
    def start_market(self, category: str, symbol: str) -> bool:
        """Start generating (category, symbol) now, as if subscribed. False if unknown."""
        if category == "option" and "-" in symbol:
            market = self.hub.ensure_market(category, symbol.split("-", 1)[0])
            return isinstance(market, OptionMarket) and market.add_contract(symbol) is not None
        return self.hub.ensure_market(category, symbol) is not None

    async def wait_for_trades(
        self,
        category: str,
        symbol: str,
        n: int,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[TruthTrade]:
        """Wait until ground truth holds at least ``n`` trades; raises TimeoutError."""
        return await self.ground_truth.wait_for_trades(category, symbol, n, timeout)

    async def wait_for_executions(
        self,
        n: int,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> list[dict[str, Any]]:
        """Wait until ground truth holds at least ``n`` executions; raises TimeoutError."""
        return await self.ground_truth.wait_for_executions(n, timeout)
