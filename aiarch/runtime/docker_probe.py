"""Readiness of a container that needs nothing inside its image.

A service may be written in any language and its image may hold nothing but its own binary, so
aiarch probes a replica from where aiarch runs: GET its readiness path at its published port on
127.0.0.1 when it has one, else at the container's address on the deployment's own bridge
network. On Linux, with the engine on this machine's socket, the host is on every bridge network
the engine makes and reaches those addresses directly.

Where it cannot (Docker Desktop and other engines in a VM, rootless Docker, an engine on another
machine), the probe runs inside the container instead, through the image's `sh` and the first of
python3, python, wget, curl or node that it has. AIARCH_PROBE=address or exec chooses the route
by hand. The image's own Dockerfile HEALTHCHECK is left to the image's author in both cases:
aiarch neither needs nor reads it.
"""

from __future__ import annotations

import os
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
if command -v python3 >/dev/null 2>&1 || command -v python >/dev/null 2>&1; then
  py="$(command -v python3 || command -v python)"
  exec "$py" -c 'import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=2).status == 200 else 1)
except Exception as error:
    print(type(error).__name__, error)
    sys.exit(1)' "$url"
elif command -v wget >/dev/null 2>&1; then
  exec wget -q -T 2 -O /dev/null "$url"
elif command -v curl >/dev/null 2>&1; then
  exec curl -fsS -m 2 -o /dev/null "$url"
elif command -v node >/dev/null 2>&1; then
  exec node -e 'const r = require("http").get(process.argv[1], {timeout: 2000}, (a) => process.exit(a.statusCode === 200 ? 0 : 1));
r.on("timeout", () => r.destroy(new Error("timed out")));
r.on("error", (e) => { console.log(e.code || e.message); process.exit(1); });' "$url"
fi
echo "the image has none of python3, wget, curl or node to probe with"
exit 1
"""


def probe_route(client: docker.DockerClient, environ: Mapping[str, str] = os.environ) -> tuple[Route, str]:
    """How replicas are probed on this engine, and why: AIARCH_PROBE when set, else "address"
    when this machine can reach the containers' addresses, else "exec"."""
    chosen = environ.get(PROBE_ENV, "").strip().lower()
    if chosen in ROUTES:
        return chosen, f"{PROBE_ENV}={chosen}"
    if chosen:
        raise UserInputError(
            f"{PROBE_ENV}={environ[PROBE_ENV]!r} is not a probe route",
            hint="set it to `address` (from this machine, at each container's address) or `exec` (inside the container)",
        )
    why_not = _unreachable_reason(client)
    if why_not:
        return "exec", f"{why_not}: containers' addresses are not reachable from here"
    return "address", "this machine reaches the deployment's bridge network"


def _unreachable_reason(client: docker.DockerClient) -> str | None:
    """Why this machine cannot reach the containers' bridge addresses, or None when it can."""
    if sys.platform != "linux":
        return f"the engine runs in a VM on {sys.platform}"
    base_url = str(getattr(client.api, "base_url", ""))
    if base_url != "http+docker://localhost":  # unix socket; tcp://, ssh:// and npipe are elsewhere
        return f"the engine is reached at {base_url or 'an unknown address'}"
    info = client.info()
    if "docker desktop" in str(info.get("OperatingSystem", "")).lower():
        return "Docker Desktop runs its engine in a VM"
    if any("rootless" in str(option) for option in info.get("SecurityOptions") or ()):
        return "a rootless engine keeps its networks in a namespace of its own"
    return None


def container_address(container: Any) -> str | None:
    """The container's address on its (only) network, None while it has none."""
    networks = ((container.attrs.get("NetworkSettings") or {}).get("Networks")) or {}
    for network in networks.values():
        if network.get("IPAddress"):
            return str(network["IPAddress"])
    return None


def readiness(container: Any, service: Service, published_url: str | None, route: Route) -> str | None:
    """The readiness probe of one replica: None when its readiness path answers 200, else why not."""
    if published_url:
        return http_probe(f"{published_url}{service.readiness_path}")
    if route == "address":
        address = container_address(container)
        if address is None:
            return f"{container.name} has no address on its network yet"
        host = f"[{address}]" if ":" in address else address
        return http_probe(f"http://{host}:{service.port}{service.readiness_path}")
    return _exec_probe(container, f"http://127.0.0.1:{service.port}{service.readiness_path}")


def _exec_probe(container: Any, url: str) -> str | None:
    import docker

    user = (container.attrs.get("Config") or {}).get("User") or None
    try:
        result = container.exec_run(["sh", "-c", _EXEC_PROBE, "aiarch-probe", url], user=user or "")
    except docker.errors.APIError as error:  # restarting, paused, gone; or no sh in the image
        return f"GET {url} inside the container: {error.explanation or error}"
    if result.exit_code == 0:
        return None
    output = result.output.decode(errors="replace").strip().splitlines()
    return f"GET {url} inside the container: {output[-1] if output else f'exit {result.exit_code}'}"
