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
- Rolling updates (aiarch.runtime.rollout): each balanced service has two server slots per
  replica, `<service>-<i>` and `<service>-<i + N>`; a replica's successor starts in the other
  slot. Slots without a replica are in maintenance (local: `disabled`; Docker: no container
  answers to the slot's name yet). aiarch turns slots on, drains and stops them through the
  admin page (`stats admin`, HTTP basic authentication with a token made at `up`, on 127.0.0.1).
"""

from __future__ import annotations

import csv
import io
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import httpx

from aiarch.config import ProjectConfig
from aiarch.errors import AiarchError, UserInputError

BALANCER = "balancer"  # its service name in deployments and records; reserved in aiarch.yaml
STATS_PROXY = "aiarch_stats"  # no service name holds an underscore
STATS_PATH = "/stats"
STATS_PORT = 8404  # inside its container
ADMIN_PROXY = "aiarch_admin"
ADMIN_PATH = "/admin"
ADMIN_PORT = 8405  # inside its container
ADMIN_USER = "aiarch"
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


@dataclass(frozen=True)
class Server:
    """One server slot of a balanced service: `<service>-<slot>` at ADDRESS (host:port)."""

    name: str
    address: str
    enabled: bool = True  # False: in maintenance until aiarch turns it on (an empty slot)


def slot_count(replicas: int) -> int:
    """Server slots of a service with REPLICAS replicas: one more for each, where its successor
    starts during a rolling update."""
    return 2 * replicas


def spare_slot(slot: int, replicas: int) -> int:
    """The slot a replica's successor takes: the other one of its pair."""
    return (slot + replicas) % slot_count(replicas)


def haproxy_config(
    plan: BalancerPlan,
    servers: Mapping[str, Sequence[Server]],
    *,
    docker_dns: bool,
    bind: str,
    stats_port: int,
    ports: Mapping[str, int] | None = None,
    admin_port: int | None = None,
    admin_token: str | None = None,
) -> str:
    """HAProxy's configuration: SERVERS maps each balanced service to its server slots; on
    Docker (DOCKER_DNS) their hosts are container names, resolved by the engine's DNS again after
    a restart. PORTS overrides a frontend's port (the local runtime's free ports). ADMIN_PORT and
    ADMIN_TOKEN add the admin page that rolling updates use (basic authentication)."""
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
            "    hold nx 1s",
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
    if admin_port is not None and admin_token is not None:
        lines += [
            f"frontend {ADMIN_PROXY}",
            f"    bind {bind}:{admin_port}",
            "    stats enable",
            f"    stats uri {ADMIN_PATH}",
            "    stats refresh 0",
            f"    stats auth {ADMIN_USER}:{admin_token}",
            "    stats admin if TRUE",
            "    stats show-legends",  # each server's address in the CSV
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
        lines += [
            f"    server {server.name} {server.address} check" + ("" if server.enabled else " disabled")
            for server in servers[frontend.service]
        ]
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
    status: str  # UP, DOWN, DRAIN, MAINT, ... (HAProxy's words)
    current: int = 0  # requests it is serving now (scur): 0 once a drained replica is idle
    address: str = ""  # where it sends them now (host:port; Docker: as the engine's DNS resolved it)


def read_stats(stats_url: str, timeout_s: float = 2.0, auth: tuple[str, str] | None = None) -> list[ServerCounts]:
    """Every balanced replica's counts from the balancer's stats page (CSV). Raises OSError-like
    httpx errors when it does not answer."""
    response = httpx.get(f"{stats_url};csv;norefresh", timeout=timeout_s, auth=auth)
    response.raise_for_status()
    return parse_stats(response.text)


def parse_stats(text: str) -> list[ServerCounts]:
    """HAProxy's stats CSV (its header line starts with '# ') to one row per server."""
    rows = csv.DictReader(io.StringIO(text.removeprefix("# ")))
    counts = []
    for row in rows:
        if row.get("svname") in ("FRONTEND", "BACKEND", None) or row.get("pxname") in (STATS_PROXY, ADMIN_PROXY):
            continue
        if (row.get("status") or "").startswith("MAINT") and (row.get("lbtot") or "0").strip() in ("", "0"):
            continue  # an empty slot (aiarch.runtime.rollout) that never served

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
                current=number("scur") + number("qcur"),
                address=(row.get("addr") or "").strip(),
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
        servers = [c for c in counts if c.service == frontend.service and not c.status.startswith("MAINT")]
        down = [f"{c.replica} {c.status}" for c in servers if not c.status.startswith("UP")]
        if len(servers) != frontend.replicas or down:
            return f"balancer: {frontend.service} replicas not all up ({', '.join(down) or f'{len(servers)} listed'})"
    return None


class BalancerAdmin:
    """Turns a balanced service's server slots on, drains and stops them, through HAProxy's
    admin page: `set(service, "inference-3", "ready" | "drain" | "maint")`."""

    def __init__(self, admin_url: str, token: str, stats_url: str) -> None:
        self.admin_url = admin_url
        self.auth = (ADMIN_USER, token)
        self.stats_url = stats_url

    def set(self, service: str, server: str, state: str) -> None:
        try:
            response = httpx.post(self.admin_url, data={"s": server, "action": state, "b": service}, auth=self.auth, timeout=5.0)
        except httpx.HTTPError as error:
            raise BalancerError(f"the load balancer's admin page does not answer ({type(error).__name__})") from None
        # It answers 303 to ...;st=DONE, or ;st=ERRP (no such server), ;st=DENY, ...
        where = response.headers.get("location", "")
        if response.status_code != 303 or not where.endswith("st=DONE"):
            raise BalancerError(f"the load balancer refused {state} for {server}: {response.status_code} {where}")

    def server(self, service: str, server: str) -> ServerCounts | None:
        """The server's counts now (None: the balancer lists no such server); BalancerError
        when the balancer does not answer."""
        try:
            counts = read_stats(self.admin_url, auth=self.auth)  # the admin page shows addresses
        except httpx.HTTPError as error:
            raise BalancerError(f"the load balancer's admin page does not answer ({type(error).__name__})") from None
        return next((c for c in counts if c.service == service and c.replica == server), None)

    def wait(self, service: str, server: str, done: Callable[[ServerCounts | None], bool], timeout_s: float) -> bool:
        """Poll the server's stats until DONE says so; False at the deadline. A reading the
        balancer did not answer is no evidence: the wait goes on."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if done(self.server(service, server)):
                    return True
            except BalancerError:
                pass
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)


class BalancerError(AiarchError):
    """The load balancer did not do what a rolling update asked."""


def haproxy_binary() -> str:
    """HAProxy for the local runtime: on PATH, or where Debian puts it."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise UserInputError(
            "a service with more than one replica needs a load balancer, and HAProxy is not installed",
            hint="install it (Debian/Ubuntu: apt-get install haproxy), or run one replica of each service",
        )
    return found
