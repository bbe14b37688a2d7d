"""aiarch export kubernetes: every manifest valid for Kubernetes (kubernetes-validate, strict
schemas, so a misspelt key fails too), the restricted Pod Security settings on every pod, the
Docker runtime's environment, probes and budgets, and an output folder that is replaced whole or
not at all. No cluster and no Docker: the manifests are checked as kubectl would read them."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from aiarch.errors import AiarchError, ConfigError, UserInputError
from aiarch.export import kubernetes
from aiarch.export.kubernetes import MARKER, KubernetesExport, KubernetesOptions, export_kubernetes
from aiarch.scaffold import ARCHITECTURES, MODEL_SIZES, new_project

REPO = Path(__file__).resolve().parents[2]
# The oldest Kubernetes the generated README asks for (preStop's sleep action), and the newest
# whose schemas kubernetes-validate bundles.
KUBERNETES_VERSIONS = ("1.30", kubernetes_validate.latest_version())
NAME, COMPONENT, PART_OF = "app.kubernetes.io/name", "app.kubernetes.io/component", "app.kubernetes.io/part-of"
GPU = "nvidia.com/gpu"

Documents = dict[str, list[dict[str, Any]]]


def manifests_in(folder: Path) -> Documents:
    """The folder's YAML documents by file, as `kubectl apply -f FOLDER` reads them."""
    return {
        path.name: [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document]
        for path in sorted(folder.glob("*.yaml"))
    }


def validate(documents: Documents) -> None:
    for file, items in documents.items():
        for document in items:
            for version in KUBERNETES_VERSIONS:
                try:
                    kubernetes_validate.validate(document, version, strict=True)
                except kubernetes_validate.ValidationError as error:
                    where = ".".join(str(part) for part in error.path)
                    pytest.fail(
                        f"{file}: {document['kind']} {document['metadata']['name']} (Kubernetes {version}): {where}: {error.message}"
                    )


def export(project: Path, out: Path | None = None, **options: Any) -> tuple[KubernetesExport, Documents]:
    result = export_kubernetes(project, out, KubernetesOptions(**options))
    documents = manifests_in(result.path)
    validate(documents)
    return result, documents


def of_kind(documents: Documents, kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for items in documents.values() for d in items if d["kind"] == kind}


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def environment(deployment: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container(deployment)["env"]}


def assert_restricted(deployment: dict[str, Any]) -> None:
    """The restricted Pod Security profile, and what aiarch's Docker runtime adds (read-only root,
    /tmp in memory)."""
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == {
        "runAsNonRoot": True,
        "runAsUser": 10001,
        "runAsGroup": 10001,
        "fsGroup": 10001,
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert pod["restartPolicy"] == "Always"
    assert not {"hostNetwork", "hostPID", "hostIPC", "initContainers"} & set(pod)
    assert pod["volumes"] == [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}}]
    for item in pod["containers"]:
        assert item["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
        }
        assert item["volumeMounts"] == [{"name": "tmp", "mountPath": "/tmp"}]
        assert "command" not in item and "args" not in item  # the image's CMD, as on Docker


def write_config(folder: Path, document: dict[str, Any]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "aiarch.yaml").write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return folder


def edited(project: Path, change: Any) -> Path:
    """PROJECT's aiarch.yaml after CHANGE(document) edits it in place."""
    document = yaml.safe_load((project / "aiarch.yaml").read_text(encoding="utf-8"))
    change(document)
    return write_config(project, document)


def two_services(**model: Any) -> dict[str, Any]:
    """A hand-written microservices project: no resources unless MODEL gives them."""
    build = {"context": ".", "dockerfile": "Dockerfile"}
    return {
        "version": 1,
        "name": "plain",
        "architecture": "microservices",
        "services": {
            "api": {
                "build": build,
                "command": ["python", "-m", "api"],
                "port": 9000,
                "entrypoint": True,
                "depends_on": ["model"],
            },
            "model": {"build": build, "command": ["python", "-m", "model"], "port": 9100, "role": "model", **model},
        },
    }


@pytest.mark.parametrize("size", MODEL_SIZES)
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_generated_project_exports_valid_restricted_manifests(tmp_path: Path, architecture: str, size: str):
    project = new_project("shop", architecture, size, tmp_path / "shop").path
    result, documents = export(project)

    assert result.path == project / "k8s"
    services = ["monolith"] if architecture == "monolith" else ["inference", "gateway"]
    assert list(documents) == ["10-network-policies.yaml", *sorted(f"20-{name}.yaml" for name in services)]
    assert (project / "k8s/README.md").is_file()
    config = yaml.safe_load((project / "aiarch.yaml").read_text(encoding="utf-8"))
    deployments = of_kind(documents, "Deployment")
    assert (
        sorted(deployments)
        == sorted(services)
        == sorted(of_kind(documents, "Service"))
        == sorted(of_kind(documents, "PodDisruptionBudget"))
    )
    for name, deployment in deployments.items():
        declared = config["services"][name]
        assert_restricted(deployment)
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels[PART_OF] == "shop" and labels[COMPONENT] == name and labels[NAME] == name
        assert labels["app.kubernetes.io/managed-by"] == "aiarch" and labels["aiarch.dev/architecture"] == architecture
        item = container(deployment)
        assert item["image"] == f"aiarch-shop-{name}:shop" and item["imagePullPolicy"] == "IfNotPresent"
        assert item["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
        assert item["startupProbe"]["httpGet"]["path"] == item["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert item["readinessProbe"]["httpGet"]["path"] == "/readyz"
        # A model that loads for a minute is not killed: liveness waits behind the startup probe.
        assert item["startupProbe"]["periodSeconds"] * item["startupProbe"]["failureThreshold"] >= 60
        memory = declared["resources"]["memory"]
        expected_memory = f"{int(memory[:-1])}Mi" if memory.endswith("m") else f"{int(memory[:-1])}Gi"
        expected = {"cpu": f"{round(declared['resources']['cpus'] * 1000)}m", "memory": expected_memory}
        assert item["resources"] == {"requests": expected, "limits": expected}
        env = environment(deployment)
        assert env["MODEL_SIZE"] == size and env["HOST"] == "0.0.0.0" and env["PORT"] == "8000"
        assert "SHOP_FAULTS" not in env  # the fault switch is aiarch's own, never exported
        assert GPU not in str(deployment)
    if architecture == "microservices":
        assert environment(deployments["gateway"])["INFERENCE_URL"] == "http://inference:8000"
        assert not any(name.endswith("_URL") for name in environment(deployments["inference"]))
    model = "monolith" if architecture == "monolith" else "inference"
    (hpa,) = of_kind(documents, "HorizontalPodAutoscaler").values()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": model}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 4) and result.autoscaled == model
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert set(hpa["spec"]["behavior"]) == {"scaleUp", "scaleDown"}
    assert "replicas" not in deployments[model]["spec"]  # the HPA's to set; apply would reset it
    for name in services:
        if name != model:
            assert deployments[name]["spec"]["replicas"] == 1
    for budget in of_kind(documents, "PodDisruptionBudget").values():
        assert budget["spec"]["maxUnavailable"] == 1 and "minAvailable" not in budget["spec"]
    assert result.warnings == ()


def test_the_network_policies_let_only_the_gateway_reach_inference(shop_projects: dict[str, Path], tmp_path: Path):
    _, documents = export(shop_projects["microservices"], tmp_path / "out")
    policies = of_kind(documents, "NetworkPolicy")
    assert sorted(policies) == ["gateway-allow-clients", "inference-allow-dependents", "shop-microservices-default-deny-ingress"]
    deny = policies["shop-microservices-default-deny-ingress"]["spec"]
    assert deny == {"podSelector": {"matchLabels": {PART_OF: "shop-microservices"}}, "policyTypes": ["Ingress"]}

    inference = policies["inference-allow-dependents"]["spec"]
    assert inference["podSelector"]["matchLabels"] == {PART_OF: "shop-microservices", COMPONENT: "inference"}
    (rule,) = inference["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8000}]
    (peer,) = rule["from"]
    assert set(peer) == {"podSelector"}  # this namespace's pods only: no namespaceSelector, no ipBlock
    assert peer["podSelector"]["matchLabels"] == {PART_OF: "shop-microservices"}
    assert peer["podSelector"]["matchExpressions"] == [{"key": COMPONENT, "operator": "In", "values": ["gateway"]}]

    gateway = policies["gateway-allow-clients"]["spec"]
    assert gateway["podSelector"]["matchLabels"][COMPONENT] == "gateway"
    assert gateway["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]  # from anywhere
    # No policy opens inference to anything else.
    opened = [p for p in policies.values() if p["spec"]["podSelector"]["matchLabels"].get(COMPONENT) == "inference"]
    assert opened == [policies["inference-allow-dependents"]]


def test_a_monolith_is_reachable_on_its_port_only(shop_projects: dict[str, Path], tmp_path: Path):
    result, documents = export(shop_projects["monolith"], tmp_path / "out")
    policies = of_kind(documents, "NetworkPolicy")
    assert sorted(policies) == ["monolith-allow-clients", "shop-monolith-default-deny-ingress"]
    assert policies["monolith-allow-clients"]["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]
    service = of_kind(documents, "Service")["monolith"]["spec"]
    assert service["type"] == "ClusterIP" and service["ports"][0]["port"] == 8000
    assert result.port_forward == "kubectl port-forward svc/monolith 8080:8000"


def test_a_gpu_is_limited_and_tolerated_on_the_gpu_service_only(project_copy: Any, tmp_path: Path):
    project = edited(project_copy("microservices"), lambda d: d["services"]["inference"].update(gpus=1))
    _, documents = export(project, tmp_path / "out")
    deployments = of_kind(documents, "Deployment")
    inference = deployments["inference"]
    assert container(inference)["resources"]["limits"][GPU] == "1"
    assert GPU not in container(inference)["resources"]["requests"]  # an extended resource's request is its limit
    assert inference["spec"]["template"]["spec"]["tolerations"] == [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    # No spare GPU for a surge pod: a replica is replaced in place.
    assert inference["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}
    gateway = deployments["gateway"]
    assert GPU not in str(gateway) and "tolerations" not in gateway["spec"]["template"]["spec"]
    assert gateway["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}


def test_replicas_and_the_autoscalers_bounds(project_copy: Any, tmp_path: Path):
    def scale(document: dict[str, Any]) -> None:
        document["services"]["gateway"]["replicas"] = 3
        document["services"]["inference"]["replicas"] = 2

    project = edited(project_copy("microservices"), scale)
    _, documents = export(project, tmp_path / "a")
    deployments = of_kind(documents, "Deployment")
    assert deployments["gateway"]["spec"]["replicas"] == 3
    assert "replicas" not in deployments["inference"]["spec"]
    (hpa,) = of_kind(documents, "HorizontalPodAutoscaler").values()
    assert hpa["metadata"]["name"] == "inference"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)

    _, documents = export(project, tmp_path / "b", min_replicas=3, max_replicas=5, target_cpu_percent=50)
    (hpa,) = of_kind(documents, "HorizontalPodAutoscaler").values()
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 5)
    assert hpa["spec"]["metrics"][0]["resource"]["target"] == {"type": "Utilization", "averageUtilization": 50}

    result, documents = export(project, tmp_path / "c", autoscale=False)
    assert of_kind(documents, "HorizontalPodAutoscaler") == {} and result.autoscaled is None
    assert of_kind(documents, "Deployment")["inference"]["spec"]["replicas"] == 2


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_replicas": 4, "max_replicas": 2}, "--max-replicas 2: must be >= --min-replicas"),
        ({"min_replicas": 0}, "--min-replicas 0: must be >= 1"),
        ({"autoscale": False, "max_replicas": 4}, "bound the autoscaler"),
        ({"target_cpu_percent": 0}, "--target-cpu 0"),
        ({"namespace": "Shop_1"}, "not a Kubernetes namespace name"),
        ({"namespace": "kube-system"}, "a namespace of the cluster's own"),
        ({"namespace": "default"}, "a namespace of the cluster's own"),
        ({"registry": "https://ghcr.io/me"}, "not an image registry prefix"),
        ({"registry": "ghcr.io/Me"}, "not an image registry prefix"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(shop_projects: dict[str, Path], tmp_path: Path, options, message):
    with pytest.raises(UserInputError, match=message) as caught:
        export_kubernetes(shop_projects["microservices"], tmp_path / "out", KubernetesOptions(**options))
    assert caught.value.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_unset_resources_are_left_out_and_no_autoscaler_is_written(tmp_path: Path):
    project = write_config(tmp_path / "plain", two_services())
    result, documents = export(project)
    for deployment in of_kind(documents, "Deployment").values():
        assert "resources" not in container(deployment)
        assert_restricted(deployment)
    # An HPA on CPU without a CPU request never scales: left out, and the user is told why.
    assert of_kind(documents, "HorizontalPodAutoscaler") == {}
    assert of_kind(documents, "Deployment")["model"]["spec"]["replicas"] == 1
    assert any("no HPA for model" in w and "resources.cpus" in w for w in result.warnings)
    assert sum("no resources in aiarch.yaml" in w for w in result.warnings) == 2
    readme = (result.path / "README.md").read_text(encoding="utf-8")
    assert "no HPA for model" in readme
    assert environment(of_kind(documents, "Deployment")["api"])["MODEL_URL"] == "http://model:9100"
    assert of_kind(documents, "NetworkPolicy")["model-allow-dependents"]["spec"]["ingress"][0]["ports"][0]["port"] == 9100


def test_quantities_are_millicores_and_binary_units(tmp_path: Path):
    project = write_config(tmp_path / "plain", two_services(resources={"cpus": 0.25, "memory": "1.5g"}, gpus=2))
    _, documents = export(project)
    resources = container(of_kind(documents, "Deployment")["model"])["resources"]
    assert resources == {
        "requests": {"cpu": "250m", "memory": "1536Mi"},
        "limits": {"cpu": "250m", "memory": "1536Mi", GPU: "2"},
    }


def test_a_registry_and_a_namespace(shop_projects: dict[str, Path], tmp_path: Path):
    result, documents = export(
        shop_projects["microservices"], tmp_path / "out", registry="localhost:5000/team/", namespace="shop"
    )
    assert next(iter(documents)) == "00-namespace.yaml"  # applied first: kubectl takes files in name order
    (namespace,) = documents["00-namespace.yaml"]
    assert namespace["kind"] == "Namespace" and namespace["metadata"]["name"] == "shop"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for items in documents.values():
        for document in items:
            if document["kind"] != "Namespace":
                assert document["metadata"]["namespace"] == "shop", document["metadata"]["name"]
    for name, deployment in of_kind(documents, "Deployment").items():
        assert container(deployment)["image"] == f"localhost:5000/team/aiarch-shop-microservices-{name}:microservices"
    assert result.images["gateway"] == "localhost:5000/team/aiarch-shop-microservices-gateway:microservices"
    assert result.port_forward == "kubectl port-forward -n shop svc/gateway 8080:8000"
    readme = (result.path / "README.md").read_text(encoding="utf-8")
    assert "docker push localhost:5000/team/aiarch-shop-microservices-inference:microservices" in readme
    assert "kubectl rollout status -n shop deployment/inference" in readme


def test_the_node_gateway_example(project_copy: Any):
    """examples/node-gateway, laid over a generated microservices shop as its README says."""
    project = project_copy("microservices")
    example = REPO / "examples/node-gateway"
    shutil.copytree(example / "gateway", project / "gateway", dirs_exist_ok=True)
    shutil.copy(example / "aiarch.yaml", project / "aiarch.yaml")
    result, documents = export(project)
    gateway = of_kind(documents, "Deployment")["gateway"]
    assert_restricted(gateway)
    assert container(gateway)["image"] == "aiarch-shop-gateway:copy-microservices"
    assert environment(gateway)["INFERENCE_URL"] == "http://inference:8000"
    assert container(gateway)["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert result.autoscaled == "inference"
    assert (
        "docker build -f gateway/Dockerfile -t aiarch-shop-gateway:copy-microservices ."
        in (result.path / "README.md").read_text()
    )


def test_the_readme_says_how_to_build_apply_reach_and_bench(project_copy: Any):
    result = export_kubernetes(project_copy("microservices"))
    readme = (result.path / "README.md").read_text(encoding="utf-8")
    image = "aiarch-shop-microservices-inference:copy-microservices"
    for line in (
        f"docker build -f services/inference/Dockerfile -t {image} .",
        f"kind load docker-image {image}",
        "kubectl apply -f k8s/",
        "kubectl rollout status deployment/inference --timeout=300s",
        "kubectl port-forward svc/gateway 8080:8000",
        "aiarch bench --url http://127.0.0.1:8080 --arch microservices -p .",
        "kubectl delete -f k8s/",
        "restartPolicy: Always",
        "The HPA scales `inference`",
    ):
        assert line in readme, line


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["services"]["inference"].update(replicas=0), "services.inference.replicas: must be >= 1"),
        (lambda d: d["services"]["gateway"].update(depends_on=["db"]), "unknown service 'db'"),
        (
            lambda d: d["services"]["inference"]["environment"].update({"MY VAR": "1"}),
            r"environment\.MY VAR: not a name Kubernetes",
        ),
        (lambda d: d["services"]["inference"].pop("build"), "services.inference.build: required to export to Kubernetes"),
        (lambda d: d.update(name="shop-"), "name: 'shop-' cannot be a Kubernetes label value"),
    ],
)
def test_a_bad_aiarch_yaml_is_refused(project_copy: Any, tmp_path: Path, change, message):
    project = edited(project_copy("microservices"), change)
    with pytest.raises(ConfigError, match=message) as caught:
        export_kubernetes(project, tmp_path / "out")
    assert caught.value.exit_code == 2  # bad input, at the CLI too
    assert not (tmp_path / "out").exists()


def test_a_service_name_kubernetes_refuses(tmp_path: Path):
    document = two_services()
    document["services"]["api-"] = document["services"].pop("api")
    with pytest.raises(ConfigError, match=r"services\.api-: cannot name a Kubernetes Service"):
        export_kubernetes(write_config(tmp_path / "plain", document))


def test_a_folder_without_aiarch_yaml_is_refused(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"no aiarch\.yaml"):
        export_kubernetes(tmp_path)


def test_a_failed_write_leaves_the_previous_export_in_place(project_copy: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    project = project_copy("monolith")
    out = tmp_path / "out"
    export_kubernetes(project, out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}

    def broken(staging: Path, target: Path) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(kubernetes, "_move_into_place", broken)
    with pytest.raises(AiarchError, match="could not write the manifests"):
        export_kubernetes(project, out, KubernetesOptions(namespace="other"))
    assert {path.name: path.read_bytes() for path in out.iterdir()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["copy-monolith", "out"]  # no staging folder left


def test_a_failed_first_write_leaves_nothing(shop_projects: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    real = Path.write_text

    def full_disk(self: Path, *args: Any, **kwargs: Any) -> int:
        if self.name == "20-monolith.yaml":
            raise OSError(28, "No space left on device")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(AiarchError, match="could not write the manifests"):
        export_kubernetes(shop_projects["monolith"], tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_a_re_export_replaces_the_earlier_one_whole(shop_projects: dict[str, Path], tmp_path: Path):
    out = tmp_path / "out"
    export(shop_projects["microservices"], out, namespace="shop")
    assert (out / "00-namespace.yaml").is_file()
    first = {path.name: path.read_bytes() for path in out.iterdir()}
    export(shop_projects["microservices"], out, namespace="shop")
    assert {path.name: path.read_bytes() for path in out.iterdir()} == first  # deterministic
    result, _ = export(shop_projects["microservices"], out)
    # A stale manifest left behind would still be applied by `kubectl apply -f`.
    assert not (out / "00-namespace.yaml").exists() and "00-namespace.yaml" not in result.files
    assert sorted(path.name for path in out.iterdir()) == sorted([*result.files, MARKER])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]


def test_a_folder_with_other_files_is_refused_and_left_alone(shop_projects: dict[str, Path], tmp_path: Path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "ingress.yaml").write_text("mine")
    with pytest.raises(UserInputError, match=r"holds files an earlier `aiarch export kubernetes` did not write \(ingress.yaml\)"):
        export_kubernetes(shop_projects["monolith"], out)
    assert [path.name for path in out.iterdir()] == ["ingress.yaml"]

    (out / "ingress.yaml").unlink()
    export_kubernetes(shop_projects["monolith"], out)  # an empty folder is used
    (out / "ingress.yaml").write_text("mine")  # added to an earlier export
    with pytest.raises(UserInputError, match=r"\(ingress.yaml\)") as caught:
        export_kubernetes(shop_projects["monolith"], out)
    assert caught.value.exit_code == 2 and (out / "ingress.yaml").read_text() == "mine"

    (tmp_path / "file").write_text("x")
    with pytest.raises(UserInputError, match="is not a folder"):
        export_kubernetes(shop_projects["monolith"], tmp_path / "file")
