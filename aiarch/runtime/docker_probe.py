"""Readiness of a container that needs nothing inside its image.

A service may be written in any language and its image may hold nothing but its own binary, so
aiarch probes a replica from where aiarch runs: GET its readiness path at its published port on
127.0.0.1 when it has one, else at the container's address on the deployment's own bridge
network. On Linux, with the engine on this machine's socket, the host holds the gateway address
of every bridge network the engine makes and reaches the containers on it directly; aiarch checks
that it holds it (it binds a socket to it) rather than assuming so.

Where it does not (Docker Desktop and other engines in a VM, rootless Docker, an engine on
another machine, aiarch itself in a container given the engine's socket), the probe runs inside
the container instead, through the image's `sh` and the first of
python3, python, wget, curl or node that it has. AIARCH_PROBE=address or exec chooses the route
by hand. The image's own Dockerfile HEALTHCHECK is left to the image's author in both cases:
aiarch neither needs nor reads it.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from aiarch.errors import UserInputError
from aiarch.runtime.base import http_probe

if TYPE_CHECKING:
    import docker

    from aiarch.config import Service

PROBE_ENV = "AIARCH_PROBE"
Route = Literal["address", "exec"]
ROUTES: tuple[Route, ...] = ("address", "exec")

# The in-container probe: a fixed script (the URL arrives as "$1", never inside the script), the
# same result convention as http_probe: silent and status 0 when the answer is 200.
_EXEC_PROBE = r"""
url="$1"
unset http_proxy HTTP_PROXY https_proxy HTTPS_PROXY all_proxy ALL_PROXY
if command -v python3 >/dev/null 2>&1 || command -v python >/dev/null 2>&1; then
  py="$(command -v python3 || command -v python)"
  exec "$py" -c 'import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
except Exception as error:
    print(type(error).__name__, error)
    sys.exit(1)' "$url"
elif command -v wget >/dev/null 2>&1; then
  exec wget -q -t 1 -T 2 -O /dev/null "$url"
elif command -v curl >/dev/null 2>&1; then
  exec curl -fsS -m 2 -o /dev/null "$url"
elif command -v node >/dev/null 2>&1; then
  exec node -e 'const r = require("http").get(process.argv[1], {timeout: 2000}, (a) => {
  if (a.statusCode !== 200) console.log(`HTTP ${a.statusCode}`);
  process.exit(a.statusCode === 200 ? 0 : 1);
});
r.on("timeout", () => r.destroy(new Error("timed out")));
r.on("error", (e) => { console.log(e.code || e.message); process.exit(1); });' "$url"
fi
echo "the image has none of python3, wget, curl or node to probe with"
exit 1
"""


def chosen_route(environ: Mapping[str, str] = os.environ) -> Route | None:
    """AIARCH_PROBE's route, None when unset; refused in one line when it names none."""
    chosen = environ.get(PROBE_ENV, "").strip().lower()
    if not chosen:
        return None
    if chosen not in ROUTES:
        raise UserInputError(
            f"{PROBE_ENV}={environ[PROBE_ENV]!r} is not a probe route",
            hint="set it to `address` (from this machine, at each container's address) or `exec` (inside the container)",
        )
    return chosen


def probe_route(client: docker.DockerClient, network: str, environ: Mapping[str, str] = os.environ) -> tuple[Route, str]:
    """How the replicas on NETWORK are probed, and why: AIARCH_PROBE when set, else "address"
    when this machine is on that network, else "exec"."""
    chosen = chosen_route(environ)
    if chosen is not None:
        return chosen, f"{PROBE_ENV}={chosen}"
    why_not = _unreachable_reason(client, network)
    if why_not:
        return "exec", f"{why_not}; {PROBE_ENV}=address to probe from here anyway"
    return "address", f"this machine is on network {network}"


def _unreachable_reason(client: docker.DockerClient, network: str) -> str | None:
    """Why this machine cannot reach the addresses on NETWORK, or None when it can: it can when
    it holds the network's gateway address, as the host of a local Linux engine does. Not so
    where the engine runs in a VM (Docker Desktop, Colima), in a namespace of its own (rootless),
    on another machine, or when aiarch itself runs in a container given the engine's socket."""
    import docker

    if sys.platform != "linux":
        return f"the engine runs in a VM on {sys.platform}"
    base_url = str(getattr(client.api, "base_url", ""))
    if base_url != "http+docker://localhost":  # a unix socket; tcp://, ssh:// and npipe are elsewhere
        return f"the engine is reached at {base_url or 'an unknown address'}"
    try:
        configs = (client.networks.get(network).attrs.get("IPAM") or {}).get("Config") or []
    except docker.errors.DockerException as error:
        return f"network {network} cannot be read ({type(error).__name__})"
    gateways = [str(config["Gateway"]).split("/")[0] for config in configs if config.get("Gateway")]
    for gateway in gateways:
        family = socket.AF_INET6 if ":" in gateway else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((gateway, 0))  # only an address this machine holds can be bound
            except OSError:
                continue
            return None
    return f"this machine holds no address on network {network} ({', '.join(gateways) or 'no gateway'})"


def container_networks(container: Any) -> dict[str, dict[str, Any]]:
    """The container's networks by name, as the engine last reported them."""
    return ((container.attrs.get("NetworkSettings") or {}).get("Networks")) or {}


def container_address(container: Any) -> str | None:
    """The container's address on its (only) network, None while it has none."""
    for network in container_networks(container).values():
        if network.get("IPAddress"):
            return str(network["IPAddress"])
    return None


def readiness(container: Any, service: Service, route: Route) -> str | None:
    """The readiness probe of one unpublished replica by ROUTE: None when its readiness path
    answers 200, else why not."""
    if route == "address":
        address = container_address(container)
        if address is None:
            return f"{container.name} has no address on its network yet"
        host = f"[{address}]" if ":" in address else address
        return http_probe(f"http://{host}:{service.port}{service.readiness_path}")
    return _exec_probe(container, f"http://127.0.0.1:{service.port}{service.readiness_path}")


def _exec_probe(container: Any, url: str) -> str | None:
    import docker
    import requests

    try:  # as the container's own user
        result = container.exec_run(["sh", "-c", _EXEC_PROBE, "aiarch-probe", url])
    except docker.errors.APIError as error:  # restarting, paused, gone; or no sh in the image
        return f"GET {url} inside the container: {error.explanation or error}"
    except requests.exceptions.RequestException as error:  # the engine did not answer in time
        return f"GET {url} inside the container: the engine did not answer ({type(error).__name__})"
    if result.exit_code == 0:
        return None
    output = result.output.decode(errors="replace").strip().splitlines()
    return f"GET {url} inside the container: {output[-1] if output else f'exit {result.exit_code}'}"
