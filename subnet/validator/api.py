"""The status API: a small aiohttp server in a background thread, read-only over the state.

Bound to 127.0.0.1 by default: operators put it behind their own proxy if they want it public.
It never waits on a write lock, the daemon's or another process's: it reads through its own
read-only connections (`ValidatorState.reader()`; WAL lets readers run beside a writer) and never
takes the daemon's connection. `/healthz` reads a few rows of the rounds table on the event loop;
the heavier pages read in worker threads.

Every JSON body is strict JSON (`strict_dumps`): a non-finite number (an unlimited age, a loss that
could not be computed) is null, never the `Infinity` or `NaN` that browsers, jq and Go refuse.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from typing import Callable, Mapping

from aiohttp import web

from subnet import __version__, git_commit
from subnet.competitions import Competition
from subnet.validator.agreement import read_agreement
from subnet.validator.degraded import read_degraded
from subnet.validator.health import Health, HealthPolicy, assess
from subnet.validator.leaderboard import leader_differences, loss_history, page_html
from subnet.validator.metrics import ValidatorMetrics
from subnet.validator.operator_status import operator_status
from subnet.validator.score_table import evidence_table, scores_table, weights_summary
from subnet.validator.state import ValidatorState


def strict_dumps(body) -> str:
    """JSON that every parser reads: NaN and infinities become null (Python's json.dumps writes bare `Infinity`)."""
    return json.dumps(_finite(body), allow_nan=False)


def _finite(x):
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _json(body, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=strict_dumps)


def _int_query(request: web.Request, name: str, default: int, top: int) -> int | None:
    try:
        return min(top, max(1, int(request.query.get(name, str(default)))))
    except ValueError:
        return None


class _Routes:
    """The API's handlers over one read-only state; each heavy read runs in a worker thread."""

    def __init__(self, state: ValidatorState, metrics: ValidatorMetrics, competitions, current_block,
                 policy: HealthPolicy, started: float) -> None:
        self.state, self.metrics, self.competitions, self.current_block = state, metrics, competitions, current_block
        self.policy, self.started = policy, started
        self.served_by = {"version": __version__, "commit": git_commit()}  # once: never a subprocess per request
        self.page = page_html()
        self.history_cache: dict[tuple, str] = {}

    async def healthz(self, request: web.Request) -> web.Response:
        health = check_health(self.state, self.metrics, self.policy, self.started)
        body = {"ok": health.ok, "reasons": health.reasons, **self.served_by, **health.details,
                "agreement": _agreement(self.state)}
        return _json(body, status=200 if health.ok else 503)

    async def status(self, request: web.Request) -> web.Response:
        """Identity, last and next weights, next round: the page's header (`operator_status`)."""
        return _json(await asyncio.to_thread(operator_status, self.state, None, self.served_by))

    async def scores(self, request: web.Request) -> web.Response:
        competition = request.query.get("competition")
        departed = request.query.get("deregistered", "0").lower() in ("1", "true", "yes")
        block = _safe_block(self.current_block)
        rows = await asyncio.to_thread(scores_table, self.state, competition, block, self.competitions,
                                       include_deregistered=departed)
        weights = await asyncio.to_thread(weights_summary, self.state)
        evidence = await asyncio.to_thread(evidence_table, self.state, competition)
        return _json({"current_block": block, "scores": rows, "weights": weights, "evidence": evidence})

    async def evidence(self, request: web.Request) -> web.Response:
        """Each pair's evidence accumulated across rounds (issue 22), as `subnet scores` shows it."""
        return _json({"evidence": await asyncio.to_thread(evidence_table, self.state,
                                                          request.query.get("competition"))})

    async def rounds(self, request: web.Request) -> web.Response:
        limit = _int_query(request, "limit", 20, 500)
        if limit is None:
            return _json({"error": "limit must be an integer"}, status=400)
        return _json({"rounds": await asyncio.to_thread(_rounds_page, self.state, limit)})

    async def index(self, request: web.Request) -> web.Response:
        return web.Response(body=self.page, content_type="text/html", charset="utf-8",
                            headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})

    async def history(self, request: web.Request) -> web.Response:
        last = _int_query(request, "rounds", 200, 1000)
        if last is None:
            return _json({"error": "rounds must be an integer"}, status=400)
        competition = request.query.get("competition")
        # The history changes only when a round's results land: cache it per newest result round.
        key = (competition, last, await asyncio.to_thread(self.state.newest_result_round))
        body = self.history_cache.get(key)
        if body is None:
            body = strict_dumps(await asyncio.to_thread(loss_history, self.state, competition, last))
            self.history_cache.clear()
            self.history_cache[key] = body
        return web.Response(text=body, content_type="application/json")

    async def pairs(self, request: web.Request) -> web.Response:
        competition = request.query.get("competition")
        if not competition:
            return _json({"error": "competition is required"}, status=400)
        return _json(await asyncio.to_thread(leader_differences, self.state, competition))

    async def metrics_text(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")


def build_app(
    state: ValidatorState,
    metrics: ValidatorMetrics,
    *,
    competitions: Mapping[str, Competition] | None = None,
    current_block: Callable[[], int | None] = lambda: None,
    healthz_max_age_s: float = 3600.0,
    healthz_idle_rounds: int = 2,
    started_at: float | None = None,
) -> web.Application:
    """The status API's routes over a read-only view of `state` (a writable one is reopened read-only)."""
    state = state if state.read_only else state.reader()
    routes = _Routes(state, metrics, competitions, current_block,
                     HealthPolicy(healthz_max_age_s, healthz_idle_rounds),
                     time.time() if started_at is None else started_at)

    async def close_reader(app: web.Application) -> None:
        state.close()

    app = web.Application()
    app.on_cleanup.append(close_reader)
    for path, handler in (("/", routes.index), ("/history", routes.history), ("/evidence", routes.evidence),
                          ("/healthz", routes.healthz), ("/status", routes.status), ("/scores", routes.scores),
                          ("/rounds", routes.rounds), ("/pairs", routes.pairs), ("/metrics", routes.metrics_text)):
        app.router.add_get(path, handler)
    return app


def _agreement(state: ValidatorState) -> dict | None:
    """The last round's agreement with the chain's consensus, and whether we are catching up (None: not yet)."""
    try:
        return read_agreement(state)
    except Exception:  # noqa: BLE001 - health must answer whatever the database does
        return None


def check_health(state: ValidatorState, metrics: ValidatorMetrics, policy: HealthPolicy, started_at: float) -> Health:
    """Assess health and mirror every reason into `/metrics` (a state that cannot be read is a reason too).

    Degraded operation (`degraded.py`: models parked or weights held for our faults, a full disk) is
    unhealthy too: the operator has something to fix, and a restart alone fixes none of it.
    """
    try:
        health = assess(state.rounds(limit=50), policy, time.time(), started_at)
        degraded = read_degraded(state)
    except Exception as e:  # noqa: BLE001 - the answer must come, whatever the database does
        health = Health(False, ["state_unreadable"], {"error": f"{type(e).__name__}: {e}"[:500]})
        degraded = None
    if degraded is not None:
        failing = bool(health.reasons)
        health.reasons += degraded.reasons
        health.details.update(degraded.details)
        health.ok = not health.reasons
        health.details["status"] = "failing" if failing else "degraded" if degraded.reasons else "ok"
        metrics.observe_degraded(degraded.details)
    health.details.setdefault("status", "ok" if health.ok else "failing")
    metrics.observe_health(health.reasons)
    return health


def _rounds_page(state: ValidatorState, limit: int) -> list[dict]:
    out = []
    for r in state.rounds(limit):
        attempts = state.weight_attempts(r.id)
        out.append({
            "id": r.id, "block": r.block, "seed": r.seed, "status": r.status, "error": r.error,
            "started_at": r.started_at, "finished_at": r.finished_at, "n_due": r.n_due,
            "n_evaluated": r.n_evaluated, "data": state.round_data(r.id),
            "weights": [{"status": a.status, "block": a.block, "message": a.message, "code": a.code,
                         "reveal_round": a.reveal_round} for a in attempts],
            "failures": state.round_failures(r.id),
        })
    return out


def _safe_block(current_block: Callable[[], int | None]) -> int | None:
    try:
        return current_block()
    except Exception:  # the chain may be down; the table falls back to the last round's block
        return None


class StatusServer:
    """Runs `build_app` on its own event loop thread; `start()` returns the bound port."""

    def __init__(self, app: web.Application, host: str = "127.0.0.1", port: int = 8091) -> None:
        self.app, self.host, self.port = app, host, port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 10.0) -> int:
        ready = threading.Event()
        error: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                self._runner = web.AppRunner(self.app, access_log=None)
                loop.run_until_complete(self._runner.setup())
                site = web.TCPSite(self._runner, self.host, self.port)
                loop.run_until_complete(site.start())
                self.port = site._server.sockets[0].getsockname()[1]  # the real port when 0 was asked
            except BaseException as e:  # reported to start()'s caller
                error.append(e)
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=serve, name="validator-api", daemon=True)
        self._thread.start()
        if not ready.wait(timeout_s):
            raise RuntimeError(f"status API did not start within {timeout_s} s")
        if error:
            raise RuntimeError(f"status API could not bind {self.host}:{self.port}: {error[0]}") from error[0]
        return self.port

    def stop(self, timeout_s: float = 5.0) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout_s)
