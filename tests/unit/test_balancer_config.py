"""The load balancer's plan, configuration and stats, without running it (the integration and
Docker tests run HAProxy for real)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from aiarch.bench.trials import balanced_shares
from aiarch.config import parse_config
from aiarch.run_record import BalancerReading, BalancerSample
from aiarch.runtime.balancer import STATS_PORT, Server, balancer_plan, haproxy_config, parse_stats, spare_slot


def shop(**replicas: int):
    services = {
        "inference": {"command": ["python", "-m", "inference"], "port": 8000, "replicas": replicas.get("inference", 1)},
        "gateway": {
            "command": ["python", "-m", "gateway"],
            "port": 8000,
            "entrypoint": True,
            "depends_on": ["inference"],
            "replicas": replicas.get("gateway", 1),
        },
    }
    return parse_config(
        {"name": "shop", "architecture": "microservices", "services": services, "balancer": {"check_interval_ms": 250}}
    )


def test_a_service_named_stats_or_on_a_taken_port_gets_its_own_frontend():
    document = {
        "name": "x",
        "architecture": "microservices",
        "services": {
            "stats": {"command": ["a"], "port": 8404, "replicas": 2},
            "a": {"command": ["a"], "port": 10000, "replicas": 2},
            "b": {"command": ["b"], "port": 10000, "replicas": 2, "entrypoint": True, "depends_on": ["stats", "a"]},
        },
    }
    plan = balancer_plan(parse_config(document), {})
    assert plan is not None
    ports = [f.port for f in plan.frontends]
    assert len(set(ports)) == 3 and STATS_PORT not in ports
    servers = {f.service: [Server(f"{f.service}-0", "h:1")] for f in plan.frontends}
    text = haproxy_config(plan, servers, docker_dns=False, bind="127.0.0.1", stats_port=9000)
    assert "frontend stats" in text and "frontend aiarch_stats" in text


def test_no_balancer_without_replicas_and_a_frontend_per_replicated_service():
    assert balancer_plan(shop(), {}) is None
    plan = balancer_plan(shop(inference=2), {})
    assert plan is not None and [f.service for f in plan.frontends] == ["inference"] and plan.entry is None
    both = balancer_plan(shop(), {"inference": 3, "gateway": 2})
    assert both is not None and both.entry == "gateway" and both.check_interval_ms == 250
    ports = {f.service: f.port for f in both.frontends}
    assert ports["inference"] == 8000 and ports["gateway"] not in (8000, STATS_PORT)  # both listen on 8000 inside
    assert [f.replicas for f in both.frontends] == [3, 2]


def test_the_configuration_checks_readiness_and_retries_refused_connections_elsewhere():
    plan = balancer_plan(shop(), {"inference": 2})
    assert plan is not None
    servers = {"inference": [Server("inference-0", "c0:8000"), Server("inference-1", "c1:8000")]}
    local = haproxy_config(plan, servers, docker_dns=False, bind="127.0.0.1", stats_port=9000, ports={"inference": 9001})
    assert "bind 127.0.0.1:9001" in local and "bind 127.0.0.1:9000" in local
    assert "http-check send meth GET uri /readyz" in local and "inter 250ms" in local and "fall 3 rise 1" in local
    assert "option redispatch 1" in local and "timeout check 2000ms" in local and "resolvers" not in local
    assert "server inference-0 c0:8000 check" in local and "server inference-1 c1:8000 check" in local
    docker = haproxy_config(plan, servers, docker_dns=True, bind="0.0.0.0", stats_port=STATS_PORT)
    assert "nameserver engine 127.0.0.11:53" in docker and "init-addr none" in docker
    assert "bind 0.0.0.0:8000" in docker


@pytest.mark.skipif(shutil.which("haproxy") is None and not shutil.which("haproxy", path="/usr/sbin"), reason="no haproxy")
def test_haproxy_accepts_the_configuration(tmp_path):
    plan = balancer_plan(shop(), {"inference": 2, "gateway": 2})
    assert plan is not None
    servers = {
        f.service: [Server(f"{f.service}-{i}", f"127.0.0.1:{7000 + i}", enabled=i < f.replicas) for i in range(2 * f.replicas)]
        for f in plan.frontends
    }
    for docker_dns in (False, True):
        path = tmp_path / f"haproxy-{docker_dns}.cfg"
        text = haproxy_config(
            plan, servers, docker_dns=docker_dns, bind="127.0.0.1", stats_port=9000, admin_port=9001, admin_token="t0k"
        )
        path.write_text(text)
        binary = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
        checked = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stdout + checked.stderr


STATS = """# pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,weight,lbtot,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,hrsp_5xx,hrsp_other,
aiarch_stats,FRONTEND,,,1,1,16,3,0,0,0,0,0,,,,,OPEN,,,0,3,0,0,0,0,
monolith,FRONTEND,,,8,8,8192,20,0,0,0,0,0,,,,,OPEN,,,0,900,0,2,1,0,
monolith,monolith-0,0,0,0,4,,169,0,0,,0,,1,0,8,0,DOWN,1,169,0,160,0,1,0,0,
monolith,monolith-1,0,0,4,4,,223,0,0,,0,,0,0,0,0,UP,1,223,0,220,0,1,2,0,
monolith,BACKEND,0,0,4,8,820,392,0,0,0,0,,1,0,8,0,UP,2,392,0,380,0,2,2,0,
"""


def test_spare_slots_wait_in_maintenance_and_the_admin_page_needs_its_token():
    plan = balancer_plan(shop(), {"inference": 2})
    assert plan is not None
    servers = {"inference": [Server(f"inference-{i}", f"c{i}:8000", enabled=i < 2) for i in range(4)]}
    text = haproxy_config(
        plan, servers, docker_dns=False, bind="127.0.0.1", stats_port=9000, admin_port=9002, admin_token="s3cret"
    )
    assert "server inference-1 c1:8000 check\n" in text and "server inference-2 c2:8000 check disabled" in text
    assert "frontend aiarch_admin" in text and "stats auth aiarch:s3cret" in text and "stats admin if TRUE" in text
    public = text.split("frontend aiarch_stats", 1)[1].split("frontend aiarch_admin", 1)[0]
    assert "stats admin" not in public and "stats auth" not in public  # the public page only reads
    assert [spare_slot(i, 2) for i in range(4)] == [2, 3, 0, 1]


def test_an_empty_slot_is_no_replica_but_a_drained_one_still_counts():
    rows = STATS.splitlines()
    rows.insert(4, "monolith,monolith-2,0,0,0,0,,0,0,0,,0,,0,0,0,0,MAINT,1,0,0,0,0,0,0,0,")
    rows.insert(5, "monolith,monolith-3,0,0,2,2,,50,0,0,,0,,0,0,0,0,DRAIN,1,50,0,48,0,0,0,0,")
    counts = {c.replica: c for c in parse_stats("\n".join(rows))}
    assert set(counts) == {"monolith-0", "monolith-1", "monolith-3"}
    assert counts["monolith-3"].status == "DRAIN" and counts["monolith-3"].current == 2 and counts["monolith-1"].current == 4


def test_stats_give_each_replica_its_requests_errors_and_state():
    counts = {c.replica: c for c in parse_stats(STATS)}
    assert set(counts) == {"monolith-0", "monolith-1"}
    assert (counts["monolith-0"].requests, counts["monolith-0"].errors, counts["monolith-0"].status) == (169, 1, "DOWN")
    assert (counts["monolith-1"].responses, counts["monolith-1"].status) == (223, "UP")


def _sample(t: float, **requests: int) -> BalancerSample:
    return BalancerSample(
        t=t,
        servers=[BalancerReading(service="app", replica=name, requests=n, errors=0, status="UP") for name, n in requests.items()],
    )


def test_shares_are_the_windows_differences():
    rows = [_sample(1.0, a0=100, a1=100), _sample(2.0, a0=150, a1=160), _sample(3.0, a0=200, a1=200)]
    shares = {b.replica: b for b in balanced_shares(rows)}
    assert shares["a0"].requests == 100 and shares["a1"].requests == 100 and shares["a0"].share == 0.5
    assert balanced_shares(rows[:1]) == []
