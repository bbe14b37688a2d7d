"""The load balancer aiarch adds in front of every service that runs more than one replica.

    plan = balancer_plan(config, {"app": 2})        # None when every service runs one replica
    text = haproxy_config(plan, servers, docker_dns=False, bind="127.0.0.1", stats_port=9000)
    counts = read_stats("http://127.0.0.1:9000/stats")   # requests per replica since it started

HAProxy (Debian's package on the local runtime, the official image or a local base on Docker),
one process for the deployment, a frontend per balanced service. Chosen over nginx because open
source nginx has no active health checks (only passive ones: a server is marked failed after
real requests to it failed), and HAProxy's stats page gives each replica's request and error
counts, which aiarch records per trial; bench/balancer.py measures both balancers' cost per
request side by side.

- Health: each replica's readiness path every `balancer.check_interval_ms` (500); three failed
  checks take it out (a check may take CHECK_TIMEOUT_MS: a saturated replica answers late, and
  is not dead), one passed check puts it back.
- A connection refused by a replica (killed, restarting) is sent to another one at once (`option
  redispatch 1`, `retries 2`): only the requests that were in flight on it fail.
- Round robin over the replicas that pass their checks; keep-alive on both sides.
- Dependents reach a balanced dependency through the balancer: on Docker the balancer holds the
  service's name on the network (its replicas answer to their container names), on the local
  runtime `<NAME>_URL` names the balancer's frontend.
- Its CPU and memory are sampled like any service's (service name "balancer").
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import httpx

from aiarch.config import ProjectConfig
from aiarch.errors import UserInputError

BALANCER = "balancer"  # its service name in deployments and records; reserved in aiarch.yaml
STATS_PROXY = "aiarch_stats"  # no service name holds an underscore
STATS_PATH = "/stats"
STATS_PORT = 8404  # inside its container
DEFAULT_IMAGE = "haproxy:2.6"  # the official image; AIARCH_BALANCER_IMAGE or images.balancer override it
BALANCER_IMAGE_ENV = "AIARCH_BALANCER_IMAGE"
CONFIG_ENV = "AIARCH_HAPROXY_CONFIG"  # how its configuration reaches a container
CHECK_TIMEOUT_MS = 2000  # a readiness check slower than this fails
FALL = 3  # failed checks in a row that take a replica out


@dataclass(frozen=True)
class Frontend:
    """One balanced service: where the balancer listens for it and how it checks its replicas."""

    service: str
    port: int  # the balancer's port for it (Docker: the service's own port where free)
    check_path: str
    replicas: int


@dataclass(frozen=True)
class BalancerPlan:
    frontends: tuple[Frontend, ...]
    check_interval_ms: int
    entry: str | None  # the entry service, when it is balanced

    def frontend(self, service: str) -> Frontend | None:
        return next((f for f in self.frontends if f.service == service), None)


def balancer_plan(config: ProjectConfig, replicas: Mapping[str, int]) -> BalancerPlan | None:
    """The balancer a deployment needs: a frontend per service with more than one replica
    (REPLICAS: the count of each service at `up`); None when there is none."""
    balanced = [name for name in config.start_order() if replicas.get(name, config.services[name].replicas) > 1]
    if not balanced:
        return None
    used: set[int] = {STATS_PORT}
    frontends = []
    spare = 10000
    for name in balanced:
        service = config.services[name]
        port = service.port
        while port in used:  # two balanced services listening on the same container port
            port, spare = spare, spare + 1
        used.add(port)
        frontends.append(Frontend(name, port, service.readiness_path, replicas.get(name, service.replicas)))
    entry, _ = config.entrypoint
    return BalancerPlan(tuple(frontends), config.balancer.check_interval_ms, entry if entry in balanced else None)


def haproxy_config(
    plan: BalancerPlan,
    servers: Mapping[str, Sequence[tuple[str, str]]],
    *,
    docker_dns: bool,
    bind: str,
    stats_port: int,
    ports: Mapping[str, int] | None = None,
) -> str:
    """HAProxy's configuration: SERVERS maps each balanced service to its replicas' (name,
    host:port); on Docker (DOCKER_DNS) the hosts are container names, resolved by the engine's
    DNS again after a restart. PORTS overrides a frontend's port (the local runtime's free ports)."""
    interval = plan.check_interval_ms
    lines = [
        "# Written by aiarch for this deployment; `aiarch down` removes it.",
        "global",
        "    maxconn 8192",
        "    stats maxconn 16",
        "",
        "defaults",
        "    mode http",
        "    timeout connect 1s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-keep-alive 60s",
        f"    timeout check {max(interval, CHECK_TIMEOUT_MS)}ms",
        "    option redispatch 1",
        "    retries 2",
        "",
    ]
    if docker_dns:
        lines += [
            "resolvers docker",
            "    nameserver engine 127.0.0.11:53",
            "    hold valid 1s",
            "    hold obsolete 1s",
            "",
        ]
    lines += [
        f"frontend {STATS_PROXY}",
        f"    bind {bind}:{stats_port}",
        "    stats enable",
        f"    stats uri {STATS_PATH}",
        "    stats refresh 0",
        "",
    ]
    for frontend in plan.frontends:
        port = (ports or {}).get(frontend.service, frontend.port)
        lines += [
            f"frontend {frontend.service}",
            f"    bind {bind}:{port}",
            f"    default_backend {frontend.service}",
            "",
            f"backend {frontend.service}",
            "    balance roundrobin",
            "    option httpchk",
            f"    http-check send meth GET uri {frontend.check_path}",
            "    http-check expect status 200",
            f"    default-server inter {interval}ms fastinter {interval}ms downinter {interval}ms fall {FALL} rise 1"
            # Docker: the engine's DNS gives each container's address once it runs, and again
            # after a restart; none at start (a lookup of a name not yet there may go upstream).
            + (" resolvers docker init-addr none" if docker_dns else ""),
        ]
        lines += [f"    server {name} {address} check" for name, address in servers[frontend.service]]
        lines.append("")
    return "\n".join(lines)


@dataclass(frozen=True)
class ServerCounts:
    """One replica as the balancer counts it, since the balancer started."""

    service: str
    replica: str
    requests: int  # sent to it (HAProxy's lbtot)
    responses: int  # answered by it, any status
    errors: int  # connection and response errors (econ + eresp)
    status: str  # UP, DOWN, ... (HAProxy's words)


def read_stats(stats_url: str, timeout_s: float = 2.0) -> list[ServerCounts]:
    """Every balanced replica's counts from the balancer's stats page (CSV). Raises OSError-like
    httpx errors when it does not answer."""
    response = httpx.get(f"{stats_url};csv;norefresh", timeout=timeout_s)
    response.raise_for_status()
    return parse_stats(response.text)


def parse_stats(text: str) -> list[ServerCounts]:
    """HAProxy's stats CSV (its header line starts with '# ') to one row per server."""
    rows = csv.DictReader(io.StringIO(text.removeprefix("# ")))
    counts = []
    for row in rows:
        if row.get("svname") in ("FRONTEND", "BACKEND", None) or row.get("pxname") == STATS_PROXY:
            continue

        def number(key: str, row: dict[str, str] = row) -> int:
            value = (row.get(key) or "").strip()
            return int(value) if value.isdigit() else 0

        responses = sum(number(f"hrsp_{kind}") for kind in ("1xx", "2xx", "3xx", "4xx", "5xx", "other"))
        counts.append(
            ServerCounts(
                service=row["pxname"],
                replica=row["svname"],
                requests=number("lbtot"),
                responses=responses,
                errors=number("econ") + number("eresp"),
                status=(row.get("status") or "").strip(),
            )
        )
    return counts


def not_all_up(stats_url: str, plan: BalancerPlan) -> str | None:
    """None when the balancer answers and every replica of every frontend passes its checks,
    else why not (the Probe convention of aiarch.runtime.base)."""
    try:
        counts = read_stats(stats_url)
    except httpx.HTTPError as error:
        return f"balancer stats at {stats_url}: {type(error).__name__}"
    for frontend in plan.frontends:
        servers = [c for c in counts if c.service == frontend.service]
        down = [f"{c.replica} {c.status}" for c in servers if not c.status.startswith("UP")]
        if len(servers) != frontend.replicas or down:
            return f"balancer: {frontend.service} replicas not all up ({', '.join(down) or f'{len(servers)} listed'})"
    return None


def haproxy_binary() -> str:
    """HAProxy for the local runtime: on PATH, or where Debian puts it."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise UserInputError(
            "a service with more than one replica needs a load balancer, and HAProxy is not installed",
            hint="install it (Debian/Ubuntu: apt-get install haproxy), or run one replica of each service",
        )
    return found
