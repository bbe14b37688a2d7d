"""How aiarch probes a container's readiness: the route chosen for an engine, and the address."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from aiarch.errors import UserInputError
from aiarch.runtime.docker_probe import container_address, probe_route


def engine(base_url: str = "http+docker://localhost", **info: object) -> SimpleNamespace:
    """What probe_route reads of a Docker client: where it connects, and the engine's info."""
    return SimpleNamespace(api=SimpleNamespace(base_url=base_url), info=lambda: {"OperatingSystem": "Debian", **info})


def test_a_local_linux_engine_is_probed_at_the_containers_addresses():
    assert probe_route(engine(), {})[0] == "address"


@pytest.mark.parametrize(
    ("client", "why"),
    [
        (engine("http://10.0.0.5:2375"), "reached at http://10.0.0.5:2375"),
        (engine("http+docker://ssh"), "reached at http+docker://ssh"),
        (engine(OperatingSystem="Docker Desktop"), "Docker Desktop"),
        (engine(SecurityOptions=["name=seccomp,profile=default", "name=rootless"]), "rootless"),
    ],
)
def test_engines_whose_networks_are_out_of_reach_are_probed_inside_the_container(client, why):
    route, reason = probe_route(client, {})
    assert route == "exec" and why in reason


def test_aiarch_probe_chooses_the_route_and_refuses_anything_else():
    assert probe_route(engine(OperatingSystem="Docker Desktop"), {"AIARCH_PROBE": "address"}) == (
        "address",
        "AIARCH_PROBE=address",
    )
    assert probe_route(engine(), {"AIARCH_PROBE": " EXEC "})[0] == "exec"
    with pytest.raises(UserInputError, match="AIARCH_PROBE='sideways' is not a probe route"):
        probe_route(engine(), {"AIARCH_PROBE": "sideways"})


def test_the_address_is_the_containers_on_its_network_once_it_has_one():
    def container(networks: dict) -> SimpleNamespace:
        return SimpleNamespace(attrs={"NetworkSettings": {"Networks": networks}})

    assert container_address(container({"aiarch-shop-1": {"IPAddress": "172.18.0.3"}})) == "172.18.0.3"
    assert container_address(container({"aiarch-shop-1": {"IPAddress": ""}})) is None  # restarting
    assert container_address(SimpleNamespace(attrs={})) is None
