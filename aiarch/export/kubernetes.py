"""`aiarch export kubernetes`: plain Kubernetes manifests for a project, from its aiarch.yaml.

The deployment `aiarch up` makes on Docker, said in Kubernetes' words, so that what runs on a
cluster is what aiarch measured on one machine: the same images (``image_tag``), environment
(HOST, PORT, ``<DEP>_URL``), health and readiness paths, CPU and memory budgets, and the same
hardening (uid 10001, no capabilities, no privilege escalation, read-only root, /tmp in memory)::

    result = export_kubernetes(Path("shop"))          # writes shop/k8s/
    result.files, result.warnings, result.port_forward

Each service gets a Deployment, a ClusterIP Service (its name is the host in ``<DEP>_URL``, as on
Docker) and a PodDisruptionBudget; the model's service an HPA; the project NetworkPolicies that
let in only the entry service's clients and each service's dependents. Plain YAML, no Helm or
Kustomize needed: ``kubectl apply -f k8s/``. The output is deterministic (no dates, no paths of
this machine), so a re-export after editing aiarch.yaml diffs cleanly.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from aiarch.config import ProjectConfig, Service, looks_secret
from aiarch.errors import AiarchError, ConfigError, UserInputError
from aiarch.runtime.balancer import CHECK_TIMEOUT_MS, FALL
from aiarch.runtime.base import Project, dependency_env
from aiarch.runtime.docker import NON_ROOT_USER, image_tag

GENERATOR = "aiarch export kubernetes"
DEFAULT_FOLDER = "k8s"  # PROJECT/k8s: next to aiarch.yaml, versioned with the project it describes
MARKER = ".aiarch-export"  # what the last export wrote: only such a folder is replaced by the next
# The pods run as the images' own user, as the Docker runtime does (NON_ROOT_USER "10001:10001").
RUN_AS_USER, RUN_AS_GROUP = (int(part) for part in NON_ROOT_USER.split(":"))
MANAGED_BY = "aiarch"
ARCHITECTURE_LABEL = "aiarch.dev/architecture"  # aiarch's Docker labels are dev.aiarch.*
GPU_RESOURCE = "nvidia.com/gpu"  # NVIDIA's device plugin
TMP_SIZE = "64Mi"  # as the Docker runtime's tmpfs on /tmp
PORT_NAME = "http"
LOCAL_PORT = 8080  # the port-forward's end on this machine, in the commands we suggest
# The model's service loads its model before it listens (up to about 60 s on a CPU): liveness
# waits behind a startup probe with twice that, so that a slow load is not killed and restarted.
STARTUP_TIMEOUT_S = 120
STARTUP_PERIOD_S = 5
# As the images' HEALTHCHECK: every 10 s, 3 s to answer, 3 failures restart the container.
LIVENESS = {"periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3}
# preStop: the endpoints controller takes the pod out of its Service while the container still
# serves; SIGTERM comes after, so that a rolling update drops no request in flight.
PRE_STOP_SLEEP_S = 5
TERMINATION_GRACE_S = 30  # > the pre-stop sleep + uvicorn's 5 s graceful shutdown
# HPA: CPU utilization is measured against the request, which aiarch sets to the limit.
TARGET_CPU_PERCENT = 70
SCALE_DOWN_WINDOW_S = 300  # Kubernetes' default: a dip in load does not give replicas away
# A new model replica is ready in up to a minute: adding more within that minute would act on the
# CPU of replicas still loading; giving one back every two minutes keeps the warm ones.
SCALE_UP_PERIOD_S = 60
SCALE_DOWN_PERIOD_S = 120

# Kubernetes' own rules for the names and values aiarch.yaml carries over.
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # a Service's name
_DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # a namespace's name
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")  # before 1.34's relaxed names
_REGISTRY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*$")

Manifest = dict[str, Any]


@dataclass(frozen=True)
class KubernetesOptions:
    """What the export may do beyond aiarch.yaml. Replica bounds default to the model service's
    replicas (min) and four times that, at least 4 (max)."""

    registry: str | None = None  # e.g. ghcr.io/me: images become REGISTRY/aiarch-NAME-SERVICE:FOLDER
    namespace: str | None = None  # adds a Namespace (restricted Pod Security) and puts everything in it
    autoscale: bool = True  # an HPA on the model's service; False: its replicas stay as aiarch.yaml says
    min_replicas: int | None = None
    max_replicas: int | None = None
    target_cpu_percent: int = TARGET_CPU_PERCENT
    startup_timeout_s: int = STARTUP_TIMEOUT_S  # how long a replica may take to start listening


@dataclass(frozen=True)
class Manifests:
    """The rendered export: file name -> its Kubernetes documents, and what a user should know."""

    files: dict[str, list[Manifest]]
    warnings: list[str] = field(default_factory=list)
    autoscaler: tuple[str, int, int] | None = None  # the service the HPA scales, its min and max replicas

    @property
    def autoscaled(self) -> str | None:
        return self.autoscaler[0] if self.autoscaler else None


@dataclass(frozen=True)
class KubernetesExport:
    """What `aiarch export kubernetes` wrote."""

    project: str
    architecture: str
    project_path: Path  # the folder of aiarch.yaml
    path: Path  # the output folder
    files: tuple[str, ...]  # its files, by name
    entry_service: str
    entry_port: int
    namespace: str | None
    images: dict[str, str]  # service -> the image its pods run
    autoscaled: str | None
    warnings: tuple[str, ...]

    @property
    def port_forward(self) -> str:
        """The command that reaches the entry service from this machine on LOCAL_PORT."""
        return f"kubectl port-forward{_namespace_flag(self.namespace)} svc/{self.entry_service} {LOCAL_PORT}:{self.entry_port}"


def export_kubernetes(
    project_dir: Path, out_dir: Path | None = None, options: KubernetesOptions | None = None
) -> KubernetesExport:
    """Write PROJECT_DIR's Kubernetes manifests and a README.md into OUT_DIR (default PROJECT/k8s).

    The files are written into a temporary sibling folder and moved into place at the end, so a
    failure or Ctrl-C leaves the previous export (or nothing) behind. An existing folder is
    replaced only when it is empty or holds exactly what an earlier export wrote (its MARKER
    says so): `kubectl apply -f` would also apply a stale manifest left among new ones, and a
    folder with anyone else's files is not ours to delete.
    """
    options = options or KubernetesOptions()
    project = Project.load(project_dir)
    target = (out_dir if out_dir is not None else project.path / DEFAULT_FOLDER).expanduser().absolute()
    rendered = kubernetes_manifests(project, options)
    _check_target(target)
    texts = {name: _yaml_file(project.config, documents) for name, documents in rendered.files.items()}
    texts["README.md"] = _readme(project, target, options, rendered)
    texts[MARKER] = json.dumps({"generator": GENERATOR, "files": sorted(texts)}, indent=2) + "\n"
    _write_atomically(target, texts)
    entry, service = project.config.entrypoint
    return KubernetesExport(
        project=project.config.name,
        architecture=project.config.architecture,
        project_path=project.path,
        path=target,
        files=tuple(sorted(name for name in texts if name != MARKER)),
        entry_service=entry,
        entry_port=service.port,
        namespace=options.namespace,
        images={name: image_of(project, name, options.registry) for name in project.config.services},
        autoscaled=rendered.autoscaled,
        warnings=tuple(rendered.warnings),
    )


def kubernetes_manifests(project: Project, options: KubernetesOptions) -> Manifests:
    """PROJECT's manifests by file name: 00-namespace.yaml (with a namespace), 10-network-policies.yaml,
    then 20-SERVICE.yaml per service (Deployment, Service, PodDisruptionBudget, HPA), dependencies
    first. `kubectl apply -f` takes a folder's files in name order: the namespace comes first."""
    config = project.config
    _check_names(config)
    _check_options(options)
    warnings: list[str] = []
    hpa = _autoscaling(config, options, warnings)
    files: dict[str, list[Manifest]] = {}
    if options.namespace:
        files["00-namespace.yaml"] = [_namespace(options.namespace)]
    files["10-network-policies.yaml"] = _network_policies(config, options.namespace)
    for name in config.start_order():
        service = config.services[name]
        if service.build is None:
            raise ConfigError(
                f"services.{name}.build: required to export to Kubernetes (the pods run the image it builds)",
                hint="add build: {context: ., dockerfile: ...} as for the Docker runtime",
            )
        if not (service.resources.cpus or service.resources.memory):
            warnings.append(
                f"{name}: no resources in aiarch.yaml, so no requests or limits: its pods are BestEffort "
                "(evicted first, placed anywhere) and measure whatever the node has spare"
            )
        if service.restart == "no":
            warnings.append(f"{name}: restart: no becomes restartPolicy Always (the only one a Deployment allows)")
        secrets = [key for key in service.environment if looks_secret(key)]
        if secrets:
            warnings.append(
                f"{name}: {', '.join(secrets)} look{'s' if len(secrets) == 1 else ''} like secrets and are written in plain "
                "text: keep the folder out of version control, or move them to a Kubernetes Secret (env valueFrom.secretKeyRef)"
            )
        documents = [
            _deployment(project, name, service, options, autoscaled=hpa is not None and hpa[0] == name),
            _service(config, name, service, options.namespace),
            _disruption_budget(config, name, options.namespace),
        ]
        if hpa is not None and hpa[0] == name:
            documents.append(_autoscaler(config, name, hpa[1], hpa[2], options))
        files[f"20-{name}.yaml"] = documents
    return Manifests(files, warnings, hpa)


def image_of(project: Project, service: str, registry: str | None) -> str:
    """The image `aiarch up` builds for SERVICE (aiarch-NAME-SERVICE:FOLDER), under REGISTRY when given."""
    local = image_tag(project, service)
    return f"{registry.rstrip('/')}/{local}" if registry else local


def _namespace_flag(namespace: str | None) -> str:
    return f" -n {namespace}" if namespace else ""


# --- checks -------------------------------------------------------------------------------------


def _check_names(config: ProjectConfig) -> None:
    """aiarch.yaml's names are valid for Docker; Kubernetes is stricter (no trailing '-', 63
    characters at most, environment names without spaces or '=')."""
    for key, value in (("name", config.name), ("architecture", config.architecture)):
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            raise ConfigError(f"{key}: {value!r} cannot be a Kubernetes label value (no trailing '-')", hint="rename it")
    for name, service in config.services.items():
        if len(name) > 63 or not _DNS_1035_LABEL.match(name):
            raise ConfigError(
                f"services.{name}: cannot name a Kubernetes Service (letters, digits and '-', ending with "
                "a letter or digit, 63 characters at most)",
                hint="rename the service (and its depends_on entries)",
            )
        for variable in service.environment:
            if not _ENV_NAME.match(variable):
                raise ConfigError(
                    f"services.{name}.environment.{variable}: not a name Kubernetes accepts for a variable "
                    "(letters, digits, '_', '-' and '.', not starting with a digit)",
                    hint="rename the variable",
                )


def _check_options(options: KubernetesOptions) -> None:
    if options.namespace is not None and (len(options.namespace) > 63 or not _DNS_1123_LABEL.match(options.namespace)):
        raise UserInputError(
            f"--namespace {options.namespace!r}: not a Kubernetes namespace name "
            "(lower-case letters, digits and '-', 63 characters at most)",
            hint="for example: --namespace shop",
        )
    if options.namespace is not None and (options.namespace == "default" or options.namespace.startswith("kube-")):
        raise UserInputError(
            f"--namespace {options.namespace}: a namespace of the cluster's own, which the export would relabel "
            "(restricted Pod Security) and `kubectl delete -f` would try to delete",
            hint="name the project's own namespace (e.g. --namespace shop), or leave -n out for kubectl's current one",
        )
    if options.registry is not None and not _REGISTRY.match(options.registry.rstrip("/")):
        raise UserInputError(
            f"--registry {options.registry!r}: not an image registry prefix",
            hint="give a host and an optional path, no scheme: ghcr.io/me or localhost:5000",
        )
    if options.min_replicas is not None and options.min_replicas < 1:
        raise UserInputError(f"--min-replicas {options.min_replicas}: must be >= 1")
    if options.max_replicas is not None and options.max_replicas < max(options.min_replicas or 1, 1):
        raise UserInputError(f"--max-replicas {options.max_replicas}: must be >= --min-replicas (and >= 1)")
    if not options.autoscale and (options.min_replicas is not None or options.max_replicas is not None):
        raise UserInputError("--min-replicas and --max-replicas bound the autoscaler", hint="drop them or --no-autoscale")
    if not 1 <= options.target_cpu_percent <= 100:
        raise UserInputError(
            f"--target-cpu {options.target_cpu_percent}: must be between 1 and 100 (% of the CPU request, which is the limit)"
        )
    if options.startup_timeout_s < STARTUP_PERIOD_S:
        raise UserInputError(f"startup timeout {options.startup_timeout_s} s: must be >= {STARTUP_PERIOD_S} s")


def _autoscaling(config: ProjectConfig, options: KubernetesOptions, warnings: list[str]) -> tuple[str, int, int] | None:
    """(service, min, max) of the HPA, or None, with the reason in WARNINGS. The HPA scales on
    CPU utilization, a share of the CPU request: without one it has nothing to measure and never
    scales, so it is left out rather than written to fail (FailedGetResourceMetric)."""
    if not options.autoscale:
        return None
    model = config.model_service
    if model is None:
        warnings.append("no HPA: no service has role: model (the one aiarch autoscales)")
        return None
    service = config.services[model]
    if not service.resources.cpus:
        warnings.append(
            f"no HPA for {model}: it has no resources.cpus in aiarch.yaml, and an HPA on CPU needs a CPU "
            f"request; set one to autoscale (its replicas stay {service.replicas})"
        )
        return None
    low = options.min_replicas or service.replicas
    high = options.max_replicas or max(4, low * 4)
    if high < low:
        raise UserInputError(f"--max-replicas {high}: must be >= the minimum, {low}")
    return model, low, high


# --- manifests ----------------------------------------------------------------------------------


def _labels(config: ProjectConfig, service: str | None = None) -> dict[str, str]:
    labels = {"app.kubernetes.io/part-of": config.name, "app.kubernetes.io/managed-by": MANAGED_BY}
    if service is not None:
        labels = {"app.kubernetes.io/name": service, **labels, "app.kubernetes.io/component": service}
    return {**labels, ARCHITECTURE_LABEL: config.architecture}


def _selector(config: ProjectConfig, service: str) -> dict[str, str]:
    # A Deployment's selector cannot change once applied: only what names the service.
    return {"app.kubernetes.io/part-of": config.name, "app.kubernetes.io/component": service}


def _metadata(name: str, labels: dict[str, str], namespace: str | None) -> Manifest:
    return {"name": name, **({"namespace": namespace} if namespace else {}), "labels": labels}


def _namespace(namespace: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": namespace,
            "labels": {
                "app.kubernetes.io/managed-by": MANAGED_BY,
                # The pods meet the restricted profile: the namespace refuses any that would not.
                "pod-security.kubernetes.io/enforce": "restricted",
                "pod-security.kubernetes.io/enforce-version": "latest",
            },
        },
    }


def _environment(config: ProjectConfig, service: Service) -> list[dict[str, str]]:
    """As the Docker runtime sets it: aiarch.yaml's environment, then HOST, PORT and each
    dependency's address at its Service's name. Never the fault switch (`faults.environment`):
    that is for aiarch's own experiments, on a deployment aiarch runs."""
    environment = {
        **service.environment,
        "HOST": "0.0.0.0",  # noqa: S104 - inside the pod; only its Service reaches it
        "PORT": str(service.port),
        **{dependency_env(d): f"http://{d}:{config.services[d].port}" for d in service.depends_on},
    }
    return [{"name": name, "value": value} for name, value in environment.items()]


def _cpu(cpus: float) -> str:
    return f"{max(1, round(cpus * 1000))}m"


def _memory(n_bytes: int) -> str:
    for unit, size in (("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if n_bytes % size == 0:
            return f"{n_bytes // size}{unit}"
    return str(n_bytes)


def _resources(service: Service) -> Manifest:
    """Requests equal to limits: the scheduler reserves the budget aiarch.yaml gives (Docker's
    --cpus and --memory are limits only), and the pod is Guaranteed when both are set, so a
    benchmark measures the budget, not what the node had spare. Unset stays unset."""
    amounts: dict[str, str] = {}
    if service.resources.cpus:
        amounts["cpu"] = _cpu(service.resources.cpus)
    if service.resources.memory_bytes:
        amounts["memory"] = _memory(service.resources.memory_bytes)
    resources: Manifest = {}
    if amounts:
        resources["requests"] = dict(amounts)
    if amounts or service.gpus:
        resources["limits"] = {**amounts, **({GPU_RESOURCE: str(service.gpus)} if service.gpus else {})}
    return resources


def _probe(path: str, **timing: int) -> Manifest:
    return {"httpGet": {"path": path, "port": PORT_NAME, "scheme": "HTTP"}, **timing}


def _container(project: Project, name: str, service: Service, options: KubernetesOptions) -> Manifest:
    config = project.config
    interval_s = max(1, math.ceil(config.balancer.check_interval_ms / 1000))
    container: Manifest = {
        "name": name,
        "image": image_of(project, name, options.registry),
        "imagePullPolicy": "IfNotPresent",  # a loaded image runs without a registry
        "ports": [{"name": PORT_NAME, "containerPort": service.port, "protocol": "TCP"}],
        "env": _environment(config, service),
        "startupProbe": _probe(
            service.health_path,
            periodSeconds=STARTUP_PERIOD_S,
            timeoutSeconds=3,
            failureThreshold=math.ceil(options.startup_timeout_s / STARTUP_PERIOD_S),
        ),
        "livenessProbe": _probe(service.health_path, **LIVENESS),
        # As aiarch's load balancer checks readiness (aiarch.runtime.balancer): its interval and
        # time-out, FALL failures in a row take a replica out of its Service.
        "readinessProbe": _probe(
            service.readiness_path,
            periodSeconds=interval_s,
            timeoutSeconds=max(1, math.ceil(CHECK_TIMEOUT_MS / 1000)),
            failureThreshold=FALL,
            successThreshold=1,
        ),
    }
    resources = _resources(service)
    if resources:
        container["resources"] = resources
    container["lifecycle"] = {"preStop": {"sleep": {"seconds": PRE_STOP_SLEEP_S}}}
    container["securityContext"] = {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
    }
    container["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]  # noqa: S108 - the pod's own emptyDir
    return container


def _deployment(project: Project, name: str, service: Service, options: KubernetesOptions, *, autoscaled: bool) -> Manifest:
    config = project.config
    # A GPU is rarely spare: a surge pod would wait for one and stall the rollout, so a GPU
    # service replaces a replica in place (one fewer while it restarts) instead.
    rolling = {"maxSurge": 0, "maxUnavailable": 1} if service.gpus else {"maxSurge": 1, "maxUnavailable": 0}
    pod: Manifest = {
        "automountServiceAccountToken": False,  # the app never talks to the API server
        # No FOO_SERVICE_HOST / FOO_PORT variables per Service: they could shadow the app's own
        # settings (a service named "model" would set MODEL_PORT); <DEP>_URL says the addresses.
        "enableServiceLinks": False,
        "restartPolicy": "Always",  # the only policy a Deployment allows, whatever `restart` says
        "terminationGracePeriodSeconds": TERMINATION_GRACE_S,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS_USER,
            "runAsGroup": RUN_AS_GROUP,
            "fsGroup": RUN_AS_GROUP,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(project, name, service, options)],
        "volumes": [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": TMP_SIZE}}],
        # Replicas on different nodes where possible: one node lost does not take them all.
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": _selector(config, name)},
            }
        ],
    }
    if service.gpus:
        pod["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
    spec: Manifest = {}
    if not autoscaled:
        # Under an HPA the replica count is its to set: a `replicas` here would reset it to this
        # number at every `kubectl apply`. The HPA's minReplicas is aiarch.yaml's count instead.
        spec["replicas"] = service.replicas
    spec |= {
        "selector": {"matchLabels": _selector(config, name)},
        "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling},
        "template": {"metadata": {"labels": _labels(config, name)}, "spec": pod},
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, _labels(config, name), options.namespace),
        "spec": spec,
    }


def _service(config: ProjectConfig, name: str, service: Service, namespace: str | None) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(name, _labels(config, name), namespace),
        "spec": {
            "type": "ClusterIP",
            "selector": _selector(config, name),
            "ports": [
                {"name": PORT_NAME, "port": service.port, "targetPort": PORT_NAME, "protocol": "TCP", "appProtocol": "http"}
            ],
        },
    }


def _disruption_budget(config: ProjectConfig, name: str, namespace: str | None) -> Manifest:
    """maxUnavailable 1, not minAvailable 1: with one replica, minAvailable 1 would forbid every
    eviction and `kubectl drain` would hang on the node; maxUnavailable 1 lets a drain take one
    replica at a time, which keeps N-1 serving once there are several."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _metadata(name, _labels(config, name), namespace),
        "spec": {
            "maxUnavailable": 1,
            "selector": {"matchLabels": _selector(config, name)},
            # A crash-looping pod protects nothing: a drain may always evict it.
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
        },
    }


def _autoscaler(config: ProjectConfig, name: str, low: int, high: int, options: KubernetesOptions) -> Manifest:
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(name, _labels(config, name), options.namespace),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": low,
            "maxReplicas": high,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": options.target_cpu_percent},
                    },
                }
            ],
            "behavior": {
                "scaleUp": {
                    "stabilizationWindowSeconds": 0,
                    "selectPolicy": "Max",
                    "policies": [
                        {"type": "Percent", "value": 100, "periodSeconds": SCALE_UP_PERIOD_S},
                        {"type": "Pods", "value": 2, "periodSeconds": SCALE_UP_PERIOD_S},
                    ],
                },
                "scaleDown": {
                    "stabilizationWindowSeconds": SCALE_DOWN_WINDOW_S,
                    "selectPolicy": "Min",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": SCALE_DOWN_PERIOD_S}],
                },
            },
        },
    }


def _network_policies(config: ProjectConfig, namespace: str | None) -> list[Manifest]:
    """Ingress only, as the Docker network allows it: every pod of the project refuses
    connections (default deny), then the entry service takes its clients on its port from
    anywhere, and each other service only its dependents (inference: the gateway) on its port.
    Egress is left open (DNS, a model download). Other apps in the namespace are untouched: the
    policies select this project's pods only. Kubelet's probes come from the node, which
    NetworkPolicies always let through."""
    policies: list[Manifest] = [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _metadata(f"{config.name}-default-deny-ingress", _labels(config), namespace),
            "spec": {"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": config.name}}, "policyTypes": ["Ingress"]},
        }
    ]
    entry, _ = config.entrypoint
    for name in config.start_order():
        service = config.services[name]
        port = [{"protocol": "TCP", "port": service.port}]
        dependents = sorted(other for other, s in config.services.items() if name in s.depends_on)
        if name == entry:
            policies.append(_allow(config, name, f"{name}-allow-clients", {"ports": port}, namespace))
        if dependents:
            peer = {
                "podSelector": {
                    "matchLabels": {"app.kubernetes.io/part-of": config.name},
                    "matchExpressions": [{"key": "app.kubernetes.io/component", "operator": "In", "values": dependents}],
                }
            }
            policies.append(_allow(config, name, f"{name}-allow-dependents", {"from": [peer], "ports": port}, namespace))
    return policies


def _allow(config: ProjectConfig, service: str, name: str, rule: Manifest, namespace: str | None) -> Manifest:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(name, _labels(config, service), namespace),
        "spec": {"podSelector": {"matchLabels": _selector(config, service)}, "policyTypes": ["Ingress"], "ingress": [rule]},
    }


# --- files --------------------------------------------------------------------------------------


def _yaml_file(config: ProjectConfig, documents: list[Manifest]) -> str:
    header = (
        f"# Generated by `{GENERATOR}` from aiarch.yaml ({config.name}, {config.architecture}).\n"
        "# Change aiarch.yaml and export again rather than edit: the next export replaces this folder.\n"
    )
    return header + yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True, default_flow_style=False, width=120)


def _check_target(target: Path) -> None:
    """TARGET may be missing, empty, or an earlier export untouched but for our own files."""
    if target.exists() and not target.is_dir():
        raise UserInputError(f"{target} exists and is not a folder", hint="choose another --output")
    if not target.is_dir() or not any(target.iterdir()):
        return
    ours: set[str] = set()
    try:
        marker = json.loads((target / MARKER).read_text(encoding="utf-8"))
        if marker.get("generator") == GENERATOR:
            ours = {str(name) for name in marker.get("files", [])} | {MARKER}
    except (OSError, ValueError, AttributeError):
        pass
    foreign = sorted(
        path.relative_to(target).as_posix() for path in target.rglob("*") if path.relative_to(target).as_posix() not in ours
    )
    if not ours or foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise UserInputError(
            f"{target} holds files an earlier `{GENERATOR}` did not write ({shown})",
            hint="choose another --output, or move those files: the export replaces its whole folder",
        )


def _write_atomically(target: Path, texts: dict[str, str]) -> None:
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", suffix=".aiarch-export", dir=target.parent))
    except OSError as error:
        raise UserInputError(f"cannot write into {target.parent}: {error.strerror}") from None
    try:
        staging.chmod(0o755)  # mkdtemp's 0700 would travel with the folder
        for name, text in texts.items():
            (staging / name).write_text(text, encoding="utf-8")
        _move_into_place(staging, target)
    except OSError as error:
        raise AiarchError(f"could not write the manifests to {target}: {error}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_into_place(staging: Path, target: Path) -> None:
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()
    if not target.exists():
        staging.rename(target)
        return
    # An earlier export: swapped for the new one, whole, so that no stale manifest stays behind.
    previous = target.parent / f".{target.name}-{secrets.token_hex(4)}.aiarch-old"
    target.rename(previous)
    try:
        staging.rename(target)
    except OSError:
        previous.rename(target)
        raise
    shutil.rmtree(previous, ignore_errors=True)


# --- README -------------------------------------------------------------------------------------


def _where(target: Path, project: Path) -> str:
    """The output folder as the README's commands (run from the project folder) name it."""
    try:
        return target.relative_to(project).as_posix()
    except ValueError:
        return str(target)


def _readme(project: Project, target: Path, options: KubernetesOptions, rendered: Manifests) -> str:
    config = project.config
    entry, entry_service = config.entrypoint
    folder = _where(target, project.path)
    ns = _namespace_flag(options.namespace)
    rows = []
    for name in config.start_order():
        service = config.services[name]
        budget = ", ".join(
            part
            for part in (
                f"{service.resources.cpus:g} CPU" if service.resources.cpus else "",
                service.resources.memory or "",
                f"{service.gpus} GPU" if service.gpus else "",
            )
            if part
        )
        hpa = rendered.autoscaler
        replicas = f"{hpa[1]}-{hpa[2]} (HPA)" if hpa and hpa[0] == name else str(service.replicas)
        rows.append(
            f"| {name} | `{image_of(project, name, options.registry)}` | {service.port} | {replicas} | "
            f"{budget or 'unset'} | `{service.health_path}` / `{service.readiness_path}` |"
        )
    builds = []
    for name in config.start_order():
        build = config.services[name].build
        assert build is not None  # kubernetes_manifests refused a service without one
        arguments = "".join(f" --build-arg {shlex.quote(f'{k}={v}')}" for k, v in build.args.items())
        local = image_tag(project, name)
        builds.append(f"docker build -f {shlex.quote(build.dockerfile)} -t {local}{arguments} {shlex.quote(build.context)}")
    if options.registry:
        transfer = ["# push them to the registry the manifests name:"]
        transfer += [f"docker tag {image_tag(project, n)} {image_of(project, n, options.registry)}" for n in config.services]
        transfer += [f"docker push {image_of(project, n, options.registry)}" for n in config.services]
    else:
        transfer = ["# no --registry given: load them into the cluster's nodes, e.g. with kind or minikube:"]
        transfer += [f"kind load docker-image {image_tag(project, n)}   # or: minikube image load ..." for n in config.services]
    waits = "\n".join(f"kubectl rollout status{ns} deployment/{name} --timeout=300s" for name in config.start_order())
    namespacing = (
        f"Everything goes into namespace `{options.namespace}` (00-namespace.yaml, restricted Pod Security): "
        "deleting these manifests deletes it too."
        if options.namespace
        else "The manifests name no namespace: they go to kubectl's current one (add `-n NAMESPACE` to each "
        "command below, or export with `--namespace`). One project per namespace: two shops share service names."
    )
    notes = "\n".join(f"- {warning}" for warning in rendered.warnings) or "- nothing to note: every service has its resources."
    files = "\n".join(
        f"- `{name}`: " + ", ".join(f"{doc['kind']} {doc['metadata']['name']}" for doc in documents)
        for name, documents in rendered.files.items()
    )
    autoscaling = "No HPA: every Deployment runs aiarch.yaml's replicas."
    if rendered.autoscaler:
        scaled, low, high = rendered.autoscaler
        autoscaling = (
            f"The HPA scales `{scaled}` on CPU ({options.target_cpu_percent}% of its request) from {low} to {high} "
            "replicas; its Deployment has no `replicas` (the HPA sets it from aiarch.yaml's count up). It needs "
            "metrics-server. To compare with `aiarch up` at a fixed count, export with `--no-autoscale`."
        )
    return f"""# {config.name} ({config.architecture}) on Kubernetes

Generated by `{GENERATOR}` from `aiarch.yaml`. Change aiarch.yaml and export again
rather than edit these files: the next export replaces this folder (layer a kustomization over
it for site-specific changes). Commands below run from the project folder (where aiarch.yaml
is). Needs Kubernetes 1.30 or later; NetworkPolicies need a network plugin that enforces them
(Calico, Cilium, ...); the HPA needs metrics-server; a GPU needs NVIDIA's device plugin.
{namespacing}

| service | image | port | replicas | per replica | health / readiness |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Files (`kubectl apply -f` takes them in name order):
{files}

## 1. Build the images

`aiarch up -p . --runtime docker` builds them under these names (with aiarch.yaml's `images:`
settings), then `aiarch down -p .`. Or by hand:

```bash
{chr(10).join(builds)}
```

## 2. Get them to the cluster

```bash
{chr(10).join(transfer)}
```

## 3. Apply and wait

```bash
kubectl apply -f {folder}/
{waits}
```

## 4. Reach it and benchmark it

```bash
kubectl port-forward{ns} svc/{entry} {LOCAL_PORT}:{entry_service.port} &
curl -s http://127.0.0.1:{LOCAL_PORT}{entry_service.readiness_path}
aiarch bench --url http://127.0.0.1:{LOCAL_PORT} --arch {config.architecture} -p .
```

`aiarch bench --url` measures a deployment aiarch did not start. A port-forward tunnels every request through the API server: fine to check it works,
a bottleneck for throughput. For numbers to compare, reach `{entry}` through a LoadBalancer,
NodePort or Ingress, or run the load generator inside the cluster.

## 5. Remove it

```bash
kubectl delete -f {folder}/
```

## From aiarch.yaml to Kubernetes

- Environment: aiarch.yaml's, plus HOST, PORT and `<DEP>_URL` = `http://<dep>:<port>`, the
  dependency's Service. The fault switch (`faults.environment`) is never set: it is for
  aiarch's own experiments. Service links are off (no `<NAME>_SERVICE_HOST` variables).
- Resources: requests = limits (`cpus` in millicores, `memory` in Mi/Gi): the scheduler reserves
  the budget aiarch measured with; unset stays unset (no requests, no limits). `gpus` becomes an
  `{GPU_RESOURCE}` limit with its toleration; a GPU service's rollout replaces replicas in place
  (no spare GPU needed), the others surge one new replica before an old one stops.
- Probes: startup and liveness on the health path (a model may load for a minute:
  {options.startup_timeout_s} s to start before liveness counts), readiness on the readiness
  path as aiarch's load balancer checks it. Several replicas: the Service balances them.
- `restart` becomes `restartPolicy: Always`, the only one a Deployment allows (a crash loop
  backs off instead of stopping after N tries).
- Security: the restricted Pod Security profile: uid/gid {RUN_AS_USER}, no privilege escalation,
  every capability dropped, RuntimeDefault seccomp, read-only root, /tmp an in-memory
  {TMP_SIZE} emptyDir, no service-account token.
- PodDisruptionBudget `maxUnavailable: 1`: a node drain evicts one replica at a time and never
  hangs on a single-replica service (as `minAvailable: 1` would).
- NetworkPolicies (ingress only): the project's pods refuse connections, except `{entry}` on
  its port from anywhere, and each service from the services that depend on it.
- {autoscaling}

## Notes on this export

{notes}
"""
