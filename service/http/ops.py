"""What an operator watches: readiness (``/readyz``) and metrics (``/metrics``, Prometheus text).

``/healthz`` (in the app) stays the cheap liveness check. ``/readyz`` asks each part the service
needs to do its work: the database, each archive store, and, by profile, the document converter
(embedded) or the broker and a worker's recent tick (scale-out); it answers 503 naming what is
wrong, in Chinese. ``/metrics`` counts requests by route in this process and reads the state of
the work from the database at each scrape (jobs by kind and state, slices, stalled slices, the
verification backlog, the broker's queue), so every web process shows the same figures whoever
did the work. It needs ``DOCSIGN_METRICS_TOKEN`` as a bearer token, or, without one, a client on
this machine.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import logs
from service.accounts.errors import Forbidden
from service.archive import repository as archive_repository
from service.archive.models import DocumentStatus
from service.clock import wall_now
from service.errors import DocsignError
from service.http.deps import ServicesDep
from service.jobs import repository as jobs_repository
from service.notify import repository as notify_repository

if TYPE_CHECKING:
    from service.container import Services

router = APIRouter(tags=["运维"])

#: Metrics of this process; the work's state is read from the database at each scrape.
REGISTRY = CollectorRegistry(auto_describe=True)
REQUESTS = Counter(
    "docsign_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=REGISTRY,
)
LATENCY = Histogram(
    "docsign_http_request_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
VERIFY = Counter(
    "docsign_verify_lookups",
    "Public verification answers (scans, typed codes), by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
UPLOADS = Counter(
    "docsign_verify_uploads",
    "PDFs uploaded to the public verification page, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)


def verify_outcome(found: bool, status: str | None, genuine: bool, pending: bool) -> str:
    """One word for a verification answer: what the counters are labelled with (never the code)."""
    if not found:
        return "not_found"
    if pending:
        return "pending"
    if status and status != DocumentStatus.VALID:
        return status
    return "genuine" if genuine else "not_genuine"


class RequestMetrics:
    """Counts and times every HTTP request by its route template (``/v/{code}``, never the code)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or "other"
            REQUESTS.labels(route, scope.get("method", ""), str(status)).inc()
            LATENCY.labels(route).observe(time.perf_counter() - started)


#: An incoming request id is kept if it looks like one (a proxy's), else a new one is made.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,64}")


class RequestIds:
    """Every request gets an id (``X-Request-ID`` from the proxy, or a new one), answered in the same
    header and carried by every log line written while it is served (``service.logs``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.fullmatch(given) else secrets.token_hex(8)
        tokens = logs.begin_request(rid)

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            logs.end_request(tokens)


class WorkCollector(Collector):
    """The state of the work, read from the database (and the broker) when scraped."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterable[Metric]:
        jobs = GaugeMetricFamily("docsign_jobs", "Background jobs by kind and state.", labels=["kind", "status"])
        slices = GaugeMetricFamily("docsign_job_slices", "Slices of split jobs by state.", labels=["status"])
        stalled = GaugeMetricFamily(
            "docsign_job_slices_stalled", "Running slices whose lease ran out (their worker is gone)."
        )
        progress = GaugeMetricFamily(
            "docsign_job_progress", "Done and total items of running jobs.", labels=["job", "kind", "of"]
        )
        backlog = GaugeMetricFamily(
            "docsign_verification_backlog", "Archived versions the background check has not verified yet."
        )
        last_done = GaugeMetricFamily(
            "docsign_job_last_done_timestamp_seconds",
            "When a job of each kind last finished well (Unix time): a schedule that stopped falls behind.",
            labels=["kind"],
        )
        versions = CounterMetricFamily(
            "docsign_document_versions",
            "Archived document versions by what made them (issued, signed, timestamped ...); rate() gives notices per second.",
            labels=["event"],
        )
        deliveries = GaugeMetricFamily(
            "docsign_notify_deliveries",
            "Messages in the delivery log by channel and state.",
            labels=["channel", "status"],
        )
        with self.services.db.session() as s:
            for kind, status, n in jobs_repository.counts_by_kind_and_status(s):
                jobs.add_metric([kind, status], n)
            for status, n in jobs_repository.slice_counts(s):
                slices.add_metric([status], n)
            stalled.add_metric([], jobs_repository.stalled_slices(s, wall_now()))
            for job_id, kind, done, total in jobs_repository.running_progress(s):
                progress.add_metric([str(job_id), kind, "done"], done)
                progress.add_metric([str(job_id), kind, "total"], total)
            backlog.add_metric([], archive_repository.verification_backlog(s))
            for kind, at in jobs_repository.last_done_by_kind(s):
                last_done.add_metric([kind], at.timestamp())
            for event, n in archive_repository.versions_by_event(s):
                versions.add_metric([event], n)
            for channel, status, n in notify_repository.delivery_counts(s):
                deliveries.add_metric([channel, status], n)
        yield from (jobs, slices, stalled, progress, backlog, last_done, versions, deliveries)
        depth = self.services.jobs.queue_depth()
        if depth is not None:
            queue = GaugeMetricFamily("docsign_queue_depth", "Messages waiting in the broker's batch queue.")
            queue.add_metric([], depth)
            yield queue
        upkeep = self.services.jobs.upkeep_queue_depth()
        if upkeep is not None:
            waiting = GaugeMetricFamily(
                "docsign_upkeep_queue_depth", "Messages waiting in the broker's upkeep queue (tick, scheduled jobs)."
            )
            waiting.add_metric([], upkeep)
            yield waiting
        tick = self.services.jobs.last_tick_age()
        if tick is not None:
            age = GaugeMetricFamily(
                "docsign_worker_tick_age_seconds", "Seconds since a worker last ran beat's tick (scale-out)."
            )
            age.add_metric([], tick)
            yield age
        stores = GaugeMetricFamily(
            "docsign_store_ready",
            "Whether each archive store can be read and written now (1) or not (0).",
            labels=["store"],
        )
        for name, store in self.services.stores.items():
            stores.add_metric([name], 1 if _check(name, store.check_ready)["ok"] else 0)
        yield stores
        expiry = GaugeMetricFamily(
            "docsign_certificate_expiry_timestamp_seconds",
            "When each certificate of the local PKI expires, and each CRL's next update is due (Unix time).",
            labels=["kind", "name"],
        )
        for item in self.services.pki.status().items:
            expiry.add_metric([item.kind, item.key or item.name], item.expires.timestamp())
        yield expiry


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in ("testclient", "localhost")


class MetricsForbidden(Forbidden):
    code = "METRICS_FORBIDDEN"
    default_message = "指标只对本机或持有 DOCSIGN_METRICS_TOKEN 的监控系统开放。"


@router.get("/metrics", summary="运行指标（Prometheus 文本格式；需要 DOCSIGN_METRICS_TOKEN 或从本机访问）")
def metrics(request: Request, services: ServicesDep) -> Response:
    token = services.settings.metrics_token.get_secret_value()
    given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
    if token:
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise MetricsForbidden()
    elif not _loopback(request):
        raise MetricsForbidden()
    registry = CollectorRegistry()
    registry.register(_Process())
    registry.register(WorkCollector(services))
    body = generate_latest(REGISTRY) + generate_latest(registry)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")


class _Process(Collector):
    """When this process started: a restart shows as a jump."""

    started = time.time()

    def collect(self) -> Iterable[GaugeMetricFamily]:
        g = GaugeMetricFamily("docsign_process_start_time_seconds", "When this web process started (Unix time).")
        g.add_metric([], self.started)
        yield g


# --- readiness ----------------------------------------------------------------------------------


def _check(name: str, fn: Callable[[], str | None]) -> dict[str, Any]:
    """Run one check: ``fn`` returns None when all is well, or what is wrong (Chinese)."""
    started = time.perf_counter()
    try:
        problem = fn()
    except DocsignError as exc:
        problem = exc.message
    except Exception as exc:  # a check that fails in any way is a part that is not ready
        problem = f"检查出错：{type(exc).__name__}"
    return {
        "name": name,
        "ok": problem is None,
        "message": problem or "正常",
        "ms": round((time.perf_counter() - started) * 1000, 1),
    }


def readiness(services: Services) -> list[dict[str, Any]]:
    """Each part the service needs, checked now."""

    def database() -> str | None:
        services.db.ping()
        return None

    checks = [_check("数据库", database)]
    for name, store in services.stores.items():
        checks.append(_check(f"归档存储（{name}）", store.check_ready))
    if services.settings.scale_out:
        runner = services.jobs
        checks.append(_check("消息队列（Celery broker）", runner.broker_problem))  # type: ignore[union-attr]
        checks.append(_check("后台工作进程", runner.worker_problem))  # type: ignore[union-attr]
    else:
        checks.append(_check("文书转换（LibreOffice）", lambda: _converter(services)))
    return checks


def _converter(services: Services) -> str | None:
    converter = services.engine.converter
    if converter.office_pids():
        return None
    converter.warm_up()  # starts it if it can; raises CONVERTER_UNAVAILABLE with what to do
    return None


@router.get("/readyz", summary="服务是否可以工作：数据库、归档存储、文书转换或消息队列与后台工作进程")
def readyz(services: ServicesDep) -> JSONResponse:
    checks = readiness(services)
    bad = [c for c in checks if not c["ok"]]
    if bad:
        message = "；".join(f"{c['name']}：{c['message']}" for c in bad)
        return JSONResponse(
            {"status": "not_ready", "code": "NOT_READY", "message": f"服务暂不能正常工作。{message}", "checks": checks},
            status_code=503,
        )
    return JSONResponse({"status": "ready", "checks": checks})
