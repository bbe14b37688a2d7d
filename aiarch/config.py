"""aiarch.yaml: the one description of a deployment that up, bench and compare read.

Any project with a valid aiarch.yaml can be deployed and measured, generated or not::

    config = load_config(Path("my-app"))          # reads my-app/aiarch.yaml
    config.entrypoint                              # ("gateway", Service(...))

Validation errors are flattened into one line that names each field path, e.g.
``services.inference.replicas: must be >= 1``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, overload

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from aiarch.errors import ConfigError, UserInputError
from aiarch.placement import CpuSpec

CONFIG_FILENAME = "aiarch.yaml"
NAME_PATTERN = r"^[a-z][a-z0-9-]*$"
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)([kmg])$", re.IGNORECASE)
_MEMORY_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3}


def parse_duration(value: Any) -> float:
    """Seconds from ``30``, ``2.5``, ``"30s"``, ``"1m30s"`` or ``"500ms"``."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 30s, 2m or 1m30s")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        if text.startswith("-"):
            raise ValueError("must not be negative")
        parts = _DURATION_PART.findall(text)
        if not parts or "".join(n + u for n, u in parts) != text:
            raise ValueError(f"{value!r} is not a duration; use e.g. 30s, 2m or 1m30s")
        seconds = sum(float(n) * _DURATION_UNITS[u] for n, u in parts)
    else:
        raise ValueError("must be a duration such as 30s, 2m or 1m30s")
    if seconds < 0:
        raise ValueError("must not be negative")
    return seconds


@overload
def parse_duration_option(flag: str, value: str) -> float: ...
@overload
def parse_duration_option(flag: str, value: None) -> None: ...
@overload
def parse_duration_option(flag: str, value: str | None) -> float | None: ...
def parse_duration_option(flag: str, value: str | None) -> float | None:
    """A duration flag's value in seconds; a bad one is a UserInputError naming the flag."""
    if value is None:
        return None
    try:
        return parse_duration(value.strip() if not value.strip().lstrip("-").replace(".", "").isdigit() else float(value))
    except ValueError as error:
        raise UserInputError(f"{flag} {value!r}: {error}") from None


def parse_memory(value: str) -> int:
    """Bytes from a Docker-style size: ``512m``, ``2g``, ``1.5g``."""
    match = _MEMORY.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a memory size; use e.g. 512m or 2g")
    return int(float(match.group(1)) * _MEMORY_UNITS[match.group(2).lower()])


Duration = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=NAME_PATTERN, max_length=63)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Build(_Model):
    """How to build a service's image; paths are relative to the project folder."""

    context: str = "."
    dockerfile: str = "Dockerfile"
    args: dict[str, str] = Field(default_factory=dict)


class Resources(_Model):
    """Limits for each replica; unset means no limit."""

    cpus: float | None = Field(default=None, gt=0)
    memory: str | None = None

    @field_validator("memory")
    @classmethod
    def _memory_is_a_size(cls, value: str | None) -> str | None:
        if value is not None:
            parse_memory(value)
        return value

    @property
    def memory_bytes(self) -> int | None:
        return None if self.memory is None else parse_memory(self.memory)


def _environment_text(value: Any) -> Any:
    # YAML turns `MODEL_SEED: 1` into an int; an environment only holds strings.
    if isinstance(value, Mapping):
        return {k: v if isinstance(v, str) else _yaml_scalar_text(v) for k, v in value.items()}
    return value


EnvironmentVariables = Annotated[dict[str, str], BeforeValidator(_environment_text)]


def _http_path(value: str) -> str:
    # Sent as it is by probes and the load balancer's checks: no space, '#' or control character.
    if not re.fullmatch(r"/[!-~]*", value) or "#" in value:
        raise ValueError(f"{value!r} must start with / and hold no space, '#' or control character (e.g. /readyz)")
    return value


def _constraint(value: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.\-]+\s*(==|!=)\s*[^\s=!]+", value.strip()):
        raise ValueError(f"{value!r} is not a Swarm placement constraint such as node.labels.gpu==true")
    return value.strip()


def _restart_policy(value: Any) -> str:
    from aiarch.supervisor import parse_restart

    if value is False:  # YAML 1.1 reads a bare `no` as false
        value = "no"
    if not isinstance(value, str):
        raise ValueError("must be no, always, on-failure or on-failure:N")
    return str(parse_restart(value))


class Service(_Model):
    """One deployable unit. Each dependency's address reaches it as ``<NAME>_URL``."""

    build: Build | None = None  # required on Docker; the local runtime runs `command`
    # Run from the project folder by the local-process runtime; "python" means the current
    # interpreter. The Docker runtime uses the image's own CMD.
    command: list[str] = Field(min_length=1)
    port: int = Field(ge=1, le=65535, strict=True)  # where it listens in a container (env PORT)
    health_path: Annotated[str, AfterValidator(_http_path)] = "/healthz"
    readiness_path: Annotated[str, AfterValidator(_http_path)] = "/readyz"
    entrypoint: bool = False
    replicas: int = Field(default=1, ge=1, le=64, strict=True)
    resources: Resources = Field(default_factory=Resources)
    gpus: int = Field(default=0, ge=0, strict=True)
    environment: EnvironmentVariables = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    # What brings a replica back when its process dies, as Docker's restart policies say it: no,
    # always, on-failure or on-failure:N (N restarts at most). Docker applies it; the local
    # runtime's supervisor (aiarch.supervisor) does the same for its processes.
    restart: Annotated[str, BeforeValidator(_restart_policy)] = "on-failure:5"
    # "model": the service that holds the model, where fault experiments aim by default.
    role: Literal["model"] | None = None
    # Where the swarm runtime may run this service's tasks: Swarm's placement constraints, passed
    # through (e.g. node.labels.gpu==true). The other runtimes run on one machine and ignore them.
    constraints: list[Annotated[str, AfterValidator(_constraint)]] = Field(default_factory=list)


def _yaml_scalar_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return value  # let validation reject lists and mappings


class Images(_Model):
    """How images are built where the defaults do not suit (no registry, a proxy, a mirror).
    The environment overrides each key (in brackets); a service's build.args win over both."""

    base: str | None = None  # [AIARCH_BASE_IMAGE] "IMAGE" or "IMAGE,service=OTHER,..."
    pip_index_url: str | None = None  # [PIP_INDEX_URL]
    pip_extra_index_url: str | None = None  # [PIP_EXTRA_INDEX_URL]
    pip_find_links: str | None = None  # [PIP_FIND_LINKS]
    pip_trusted_host: str | None = None  # [PIP_TRUSTED_HOST]
    ca_bundle: str | None = None  # [AIARCH_CA_BUNDLE] a PEM file pip trusts while building
    balancer: str | None = None  # [AIARCH_BALANCER_IMAGE] HAProxy's image (default haproxy:2.6)
    # [AIARCH_REGISTRY] where the swarm runtime pushes the images it builds, for every node to
    # pull (e.g. registry.example:5000/team); required on a swarm of several nodes.
    registry: str | None = None


SLO_PERCENTILES = ("p50", "p90", "p95", "p99", "p99.9")
SLO_ERRORS = "errors"


def parse_slo_item(name: str, value: Any) -> tuple[str, float]:
    """One bound of a latency objective: ("p99", "50ms") -> ("p99", 50.0) in ms; ("errors", "1%")
    -> ("errors", 0.01). A latency needs its unit (ms or s): a bare number could mean either."""
    name = str(name).strip().lower()
    if name == SLO_ERRORS:
        text = str(value).strip()
        try:
            rate = float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"errors={value}: give the maximum error rate as a share or percentage, e.g. 0.01 or 1%") from None
        if isinstance(value, bool) or not 0 <= rate <= 1:
            raise ValueError(f"errors={value}: must be between 0 and 1 (0% and 100%)")
        return name, rate
    if name not in SLO_PERCENTILES:
        raise ValueError(f"{name}: not a percentile aiarch measures (use {', '.join(SLO_PERCENTILES)} or errors)")
    text = str(value).strip().lower()
    if isinstance(value, int | float) or not text.endswith(("ms", "s")):  # bool is an int
        raise ValueError(f"{name}={value}: give a latency with its unit, e.g. {name}=50ms or {name}=0.2s")
    if text.startswith("-"):
        raise ValueError(f"{name}={value}: a latency bound must be > 0")
    try:
        seconds = parse_duration(text)
    except ValueError:
        raise ValueError(f"{name}={value}: not a latency; give e.g. {name}=50ms or {name}=0.2s") from None
    if seconds <= 0:
        raise ValueError(f"{name}={value}: a latency bound must be > 0")
    return name, seconds * 1000.0


def parse_share(value: Any) -> float:
    """0.05 or "5%" -> 0.05."""
    text = str(value).strip()
    if isinstance(value, bool):
        raise ValueError("must be a share such as 0.05 or 5%")
    try:
        return float(text[:-1]) / 100.0 if text.endswith("%") else float(text)
    except ValueError:
        raise ValueError(f"{value!r} is not a share; use e.g. 0.05 or 5%") from None


def _slo(value: Any) -> Any:
    if not isinstance(value, Mapping):
        raise ValueError("must be a mapping such as {p99: 50ms, errors: 1%}")
    parsed = dict(parse_slo_item(name, bound) for name, bound in value.items())
    if not set(parsed) - {SLO_ERRORS}:
        raise ValueError("needs at least one latency bound, e.g. p99: 50ms")
    return parsed


Share = Annotated[float, BeforeValidator(parse_share)]


class CapacityDefaults(_Model):
    """`aiarch bench --capacity`: where the search starts and stops, and each step's length."""

    start_rate: float = Field(default=50.0, gt=0)  # requests per second of the first step
    max_rate: float = Field(default=100_000.0, gt=0)
    precision: Share = Field(default=0.05, gt=0, le=0.5)  # of the rate: (first fail - last pass) / last pass
    growth: float = Field(default=2.0, gt=1, le=10)  # the rate's factor from one passing step to the next
    step: Duration = 5.0  # each step's minimum measured time
    warmup: Duration = 2.0  # before each step's measurement
    min_requests: int = Field(default=200, ge=1, strict=True)  # measured per step: a slow step runs longer
    budget: Duration = 900.0  # the whole search


class BenchDefaults(_Model):
    """What `aiarch bench` does when no flag says otherwise."""

    scenario: str = "locustfile.py"
    users: int = Field(default=16, ge=1, strict=True)
    spawn_rate: float = Field(default=16.0, gt=0)
    duration: Duration = 30.0
    warmup: Duration = 5.0
    # The latency objective of `bench --capacity`: a bound per percentile and a maximum error rate.
    slo: Annotated[dict[str, float], BeforeValidator(_slo)] = Field(default_factory=lambda: {"p99": 50.0, SLO_ERRORS: 0.01})
    capacity: CapacityDefaults = Field(default_factory=CapacityDefaults)
    # A response header that names the version that answered (the shop's x-model-version):
    # `aiarch experiment redeploy` records it per request to see each version's share.
    version_header: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")] | None = None

    @field_serializer("slo")
    def _slo_as_written(self, slo: dict[str, float]) -> dict[str, Any]:
        # As aiarch.yaml would say it ("50ms"), so that a saved configuration reads back.
        return {name: value if name == SLO_ERRORS else f"{value:g}ms" for name, value in slo.items()}

    @model_validator(mode="after")
    def _warmup_shorter_than_run(self) -> BenchDefaults:
        if self.duration <= 0:
            raise ValueError("duration: must be > 0")
        if self.warmup >= self.duration:
            raise ValueError("warmup: must be shorter than duration")
        return self


class PlacementSettings(_Model):
    """Which CPUs run what (aiarch.placement): `up` pins the services, `bench` the load generator."""

    # auto (at `up`: one CPU per four kept free, at least one), a CPU list ("0", "0-1,3"), or
    # none: no placement, the load generator shares the services' CPUs (the run record says so).
    loadgen_cpus: str | int = "auto"
    # auto (every CPU the load generator does not take) or a CPU list ("1-3").
    service_cpus: str | int = "auto"

    @field_validator("loadgen_cpus", "service_cpus", mode="before")
    @classmethod
    def _cpu_spec(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise ValueError("must be auto, none or a CPU list such as 0-1")
        try:
            CpuSpec.parse(value)
        except UserInputError as error:
            raise ValueError(error.message.partition(": ")[2]) from None
        if info.field_name == "service_cpus" and str(value).strip() == "none":
            raise ValueError("must be auto or a CPU list such as 1-3")
        return value


class FaultSwitch(_Model):
    """The app's own fault switch, for fault experiments that need the app's help (a crash on a
    bad input, a leak, added latency). Off unless `aiarch up --faults` sets ENVIRONMENT in every
    service; then `POST <entry>PATH {"kind": ...}` reaches the service that holds the model."""

    path: str = Field(default="/faults", pattern=r"^/")
    environment: EnvironmentVariables = Field(min_length=1)


RESERVED_SERVICE = "balancer"  # the load balancer aiarch adds (aiarch.runtime.balancer)


class BalancerSettings(_Model):
    """The load balancer aiarch puts in front of every service that runs several replicas."""

    # How often it checks each replica's readiness path; two failed checks take a replica out.
    check_interval_ms: int = Field(default=500, ge=100, le=10_000, strict=True)


class ProjectConfig(_Model):
    """The whole of aiarch.yaml."""

    version: Literal[1] = 1
    name: Name
    architecture: Name
    services: dict[str, Service] = Field(min_length=1)
    images: Images = Field(default_factory=Images)
    bench: BenchDefaults = Field(default_factory=BenchDefaults)
    placement: PlacementSettings = Field(default_factory=PlacementSettings)
    faults: FaultSwitch | None = None
    balancer: BalancerSettings = Field(default_factory=BalancerSettings)

    @field_validator("services")
    @classmethod
    def _service_names(cls, services: dict[str, Service]) -> dict[str, Service]:
        for name in services:
            if not re.match(NAME_PATTERN, name):
                raise ValueError(f"service name {name!r} must match {NAME_PATTERN}")
            if name == RESERVED_SERVICE:
                raise ValueError(f"service name {name!r} is reserved for the load balancer aiarch adds; rename the service")
        return services

    @model_validator(mode="after")
    def _topology(self) -> ProjectConfig:
        entrypoints = [n for n, s in self.services.items() if s.entrypoint]
        if len(entrypoints) != 1:
            found = ", ".join(entrypoints) or "none"
            raise ValueError(f"services: exactly one service needs `entrypoint: true` (found: {found})")
        for name, service in self.services.items():
            for dependency in service.depends_on:
                if dependency not in self.services:
                    known = ", ".join(sorted(self.services))
                    raise ValueError(f"services.{name}.depends_on: unknown service {dependency!r} (services: {known})")
        models = [n for n, s in self.services.items() if s.role == "model"]
        if len(models) > 1:
            raise ValueError(f"services: at most one service has `role: model` (found: {', '.join(models)})")
        self.start_order()  # raises on a cycle
        return self

    @property
    def model_service(self) -> str | None:
        """The service that holds the model: `role: model`, else the only service, else None."""
        named = [n for n, s in self.services.items() if s.role == "model"]
        if named:
            return named[0]
        return next(iter(self.services)) if len(self.services) == 1 else None

    @property
    def entrypoint(self) -> tuple[str, Service]:
        return next((n, s) for n, s in self.services.items() if s.entrypoint)

    def start_order(self) -> list[str]:
        """Service names, dependencies before their dependents."""
        order: list[str] = []
        state: dict[str, str] = {}

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                cycle = " -> ".join([*path[path.index(name) :], name])
                raise ValueError(f"services: dependency cycle {cycle}")
            state[name] = "visiting"
            for dependency in self.services[name].depends_on:
                visit(dependency, [*path, name])
            state[name] = "done"
            order.append(name)

        for name in self.services:
            visit(name, [])
        return order


_PYDANTIC_MESSAGES: dict[str, Callable[[Any], str]] = {
    "missing": lambda e: "required",
    "extra_forbidden": lambda e: "unknown key (check its spelling against the README)",
    "greater_than_equal": lambda e: f"must be >= {e['ctx']['ge']}",
    "greater_than": lambda e: f"must be > {e['ctx']['gt']}",
    "less_than_equal": lambda e: f"must be <= {e['ctx']['le']}",
    "string_pattern_mismatch": lambda e: f"must match {e['ctx']['pattern']}",
    "literal_error": lambda e: f"must be {e['ctx']['expected']}",
    "too_short": lambda e: "must not be empty",
    "int_parsing": lambda e: "must be an integer",
    "int_type": lambda e: "must be an integer",
    "int_from_float": lambda e: "must be an integer",
    "float_parsing": lambda e: "must be a number",
    "float_type": lambda e: "must be a number",
    "bool_parsing": lambda e: "must be true or false",
    "bool_type": lambda e: "must be true or false",
    "string_type": lambda e: "must be text",
    "dict_type": lambda e: "must be a mapping",
    "list_type": lambda e: "must be a list",
    "model_type": lambda e: "must be a mapping",
}


_SCOPED_MESSAGE = re.compile(r"^([a-z_][\w.-]*): (.+)$")


def describe_validation_error(error: ValidationError, limit: int | None = None) -> str:
    """One line naming each failing field path (the first LIMIT of them), e.g.
    ``services.x.replicas: must be >= 1``."""
    problems = []
    for item in error.errors():
        path = ".".join(str(part) for part in item["loc"])
        render = _PYDANTIC_MESSAGES.get(item["type"])
        if render:
            message = render(item)
        elif item["type"] == "value_error":
            message = str(item["ctx"]["error"])
        else:
            message = item["msg"]
        # Cross-field checks name the field they are about, relative to where they run.
        scoped = _SCOPED_MESSAGE.match(message)
        if scoped:
            path = f"{path}.{scoped.group(1)}" if path else scoped.group(1)
            message = scoped.group(2)
        problems.append(f"{path}: {message}" if path else message)
    if limit is not None and len(problems) > limit:
        problems = [*problems[:limit], f"and {len(problems) - limit} more"]
    return "; ".join(problems)


def parse_config(document: Any, source: str = CONFIG_FILENAME) -> ProjectConfig:
    """Validate an already-parsed YAML document."""
    if not isinstance(document, Mapping):
        raise ConfigError(
            f"{source} must be a mapping of keys (name, architecture, services, ...)",
            hint="see the aiarch.yaml section of the README",
        )
    try:
        return ProjectConfig.model_validate(document)
    except ValidationError as error:
        raise ConfigError(
            f"{source} is invalid: {describe_validation_error(error)}",
            hint="fix the named fields and run the command again",
        ) from None


_SECRET_NAME = re.compile(r"secret|token|passw|credential|api_?key|private|auth", re.IGNORECASE)


def looks_secret(name: str) -> bool:
    """Whether an environment variable's name suggests a secret (records hide its value)."""
    return bool(_SECRET_NAME.search(name))


def recorded_environment(environment: Mapping[str, str]) -> dict[str, str]:
    """ENVIRONMENT as records keep it: a variable whose name suggests a secret shows no value."""
    return {name: "(hidden)" if _SECRET_NAME.search(name) else value for name, value in sorted(environment.items())}


def without_secrets(config: ProjectConfig) -> ProjectConfig:
    """CONFIG as records keep it (deployment and run records travel): secret values hidden."""
    services = {
        name: service.model_copy(update={"environment": recorded_environment(service.environment)})
        for name, service in config.services.items()
    }
    return config.model_copy(update={"services": services})


def config_changes(before: ProjectConfig, after: ProjectConfig) -> list[str]:
    """What differs between two configurations, by field path (`bench:` left out: it says how to
    load-test, not what runs), e.g. ``services.monolith.environment.BATCHING: 'on' -> 'off'``."""

    def flat(value: Any, path: str) -> dict[str, Any]:
        if isinstance(value, dict) and value:
            return {
                key: leaf for name, item in value.items() for key, leaf in flat(item, f"{path}.{name}" if path else name).items()
            }
        return {path: value}

    old = flat(without_secrets(before).model_dump(mode="json", exclude={"bench"}), "")
    new = flat(without_secrets(after).model_dump(mode="json", exclude={"bench"}), "")
    changes = []
    for path in sorted(old.keys() | new.keys()):
        if old.get(path, "(unset)") != new.get(path, "(unset)"):
            changes.append(f"{path}: {old.get(path, '(unset)')!r} -> {new.get(path, '(unset)')!r}")
    return changes


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (the last would silently win)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (each key may appear once)", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_config(project: Path) -> ProjectConfig:
    """Read and validate PROJECT/aiarch.yaml (or the file itself when given one)."""
    path = project if project.is_file() else project / CONFIG_FILENAME
    if not path.exists():
        raise ConfigError(
            f"no {CONFIG_FILENAME} in {project}",
            hint="run the command inside a project made by `aiarch new`, or write one",
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or "malformed YAML"
        raise ConfigError(f"{path} is not valid YAML{where}: {problem}") from None
    return parse_config(document, source=str(path))
