"""How aiarch probes a container's readiness: the route chosen for an engine, and the address."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from aiarch.errors import UserInputError
from aiarch.runtime.docker_probe import chosen_route, container_address, probe_route


def engine(base_url: str = "http+docker://localhost", gateway: str | None = "127.0.0.1") -> SimpleNamespace:
    """What probe_route reads of a Docker client: where it connects, and its network's gateway
    (127.0.0.1 stands for an address this machine holds, as a local engine's bridge gateway)."""
    config = [{"Subnet": "172.30.0.0/16", **({"Gateway": gateway} if gateway else {})}]
    network = SimpleNamespace(attrs={"IPAM": {"Config": config}})
    return SimpleNamespace(api=SimpleNamespace(base_url=base_url), networks=SimpleNamespace(get=lambda name: network))


def test_a_network_whose_gateway_this_machine_holds_is_probed_at_the_containers_addresses():
    assert probe_route(engine(), "aiarch-shop-1", {}) == ("address", "this machine is on network aiarch-shop-1")


@pytest.mark.parametrize(
    ("client", "why"),
    [
        (engine("http://10.0.0.5:2375"), "reached at http://10.0.0.5:2375"),
        (engine("http+docker://ssh"), "reached at http+docker://ssh"),
        # The gateway is not here: a VM (Docker Desktop), rootless, or aiarch in a container.
        (engine(gateway="203.0.113.1"), "holds no address on network aiarch-shop-1 (203.0.113.1)"),
        (engine(gateway=None), "holds no address on network aiarch-shop-1 (no gateway)"),
    ],
)
def test_networks_out_of_this_machines_reach_are_probed_inside_the_container(client, why):
    route, reason = probe_route(client, "aiarch-shop-1", {})
    assert route == "exec" and why in reason and "AIARCH_PROBE=address" in reason


def test_aiarch_probe_chooses_the_route_and_refuses_anything_else():
    assert probe_route(engine(gateway="203.0.113.1"), "n", {"AIARCH_PROBE": "address"}) == ("address", "AIARCH_PROBE=address")
    assert probe_route(engine(), "n", {"AIARCH_PROBE": " EXEC "})[0] == "exec"
    assert chosen_route({}) is None
    with pytest.raises(UserInputError, match="AIARCH_PROBE='sideways' is not a probe route"):
        chosen_route({"AIARCH_PROBE": "sideways"})


def test_the_address_is_the_containers_on_its_network_once_it_has_one():
    def container(networks: dict) -> SimpleNamespace:
        return SimpleNamespace(attrs={"NetworkSettings": {"Networks": networks}})

    assert container_address(container({"aiarch-shop-1": {"IPAddress": "172.18.0.3"}})) == "172.18.0.3"
    assert container_address(container({"aiarch-shop-1": {"IPAddress": ""}})) is None  # restarting
    assert container_address(SimpleNamespace(attrs={})) is None
