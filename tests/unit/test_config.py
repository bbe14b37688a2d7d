from pathlib import Path

import pytest
import yaml

from aiarch.config import config_changes, load_config, parse_config, parse_duration, parse_memory, without_secrets
from aiarch.errors import ConfigError


def minimal(**service_overrides):
    service = {"build": {"dockerfile": "Dockerfile"}, "command": ["python", "-m", "app"], "port": 8000, "entrypoint": True}
    service.update(service_overrides)
    return {"name": "demo", "architecture": "monolith", "services": {"app": service}}


def error_of(document) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(document)
    assert caught.value.exit_code == 2
    assert "\n" not in caught.value.message
    return caught.value.message


def test_a_minimal_config_gets_defaults():
    config = parse_config(minimal())
    name, service = config.entrypoint
    assert name == "app" and service.replicas == 1 and service.readiness_path == "/readyz"
    assert config.bench.duration == 30.0 and config.bench.warmup == 5.0


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (minimal(replicas=0), "services.app.replicas: must be >= 1"),
        (minimal(replicaz=2), "services.app.replicaz: unknown key"),
        (minimal(port="eighty"), "services.app.port: must be an integer"),
        (minimal(resources={"memory": "lots"}), "services.app.resources.memory: 'lots' is not a memory size"),
        (minimal(resources={"cpus": 0}), "services.app.resources.cpus: must be > 0"),
        (minimal(depends_on=["db"]), "services.app.depends_on: unknown service 'db'"),
        (minimal(entrypoint=False), "exactly one service needs `entrypoint: true`"),
        (minimal(readiness_path="readyz"), "services.app.readiness_path: 'readyz' must start with /"),
        (minimal(health_path="/health z"), "services.app.health_path: '/health z' must start with / and hold no space"),
        ({**minimal(), "name": "Bad Name"}, "name: must match"),
        ({**minimal(), "version": 2}, "version: must be 1"),
        ({k: v for k, v in minimal().items() if k != "services"}, "services: required"),
        ({**minimal(), "bench": {"duration": "5s", "warmup": "10s"}}, "bench.warmup: must be shorter than duration"),
        ({**minimal(), "bench": {"duration": "soon"}}, "bench.duration: 'soon' is not a duration"),
        (minimal(replicas=True), "services.app.replicas: must be an integer"),
        (minimal(port=True), "services.app.port: must be an integer"),
        (minimal(replicas=65), "services.app.replicas: must be <= 64"),
        (
            {**minimal(), "services": {"balancer": minimal()["services"]["app"]}},
            "service name 'balancer' is reserved for the load balancer aiarch adds",
        ),
        ({**minimal(), "balancer": {"check_interval_ms": 10}}, "balancer.check_interval_ms: must be >= 100"),
    ],
)
def test_invalid_configs_name_the_field_path(document, expected):
    assert expected in error_of(document)


def test_several_problems_are_reported_on_one_line():
    message = error_of({**minimal(replicas=0), "name": "X"})
    assert "name: must match" in message and "services.app.replicas: must be >= 1" in message


def test_dependency_cycles_are_named():
    document = minimal(depends_on=["worker"])
    document["services"]["worker"] = {"build": {}, "command": ["w"], "port": 1, "depends_on": ["app"]}
    assert "dependency cycle app -> worker -> app" in error_of(document)


def test_start_order_puts_dependencies_first():
    document = minimal(depends_on=["inference"])
    document["services"]["inference"] = {"build": {}, "command": ["i"], "port": 1}
    assert parse_config(document).start_order() == ["inference", "app"]


def test_environment_values_become_text():
    config = parse_config(minimal(environment={"SEED": 1, "ON": True, "RATE": 0.5}))
    assert config.services["app"].environment == {"SEED": "1", "ON": "true", "RATE": "0.5"}


def test_durations_and_memory_sizes():
    assert parse_duration("1m30s") == 90 and parse_duration("500ms") == 0.5 and parse_duration(12) == 12
    assert parse_memory("512m") == 512 * 1024**2 and parse_memory("1.5g") == int(1.5 * 1024**3)
    for bad in ("", "10x", "5s junk", "-3", True):
        with pytest.raises(ValueError):
            parse_duration(bad)


def test_load_config_reports_missing_file_and_yaml_syntax(tmp_path: Path):
    with pytest.raises(ConfigError, match=r"no aiarch\.yaml"):
        load_config(tmp_path)
    (tmp_path / "aiarch.yaml").write_text("name: demo\nservices: [unclosed\n")
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+"):
        load_config(tmp_path)
    (tmp_path / "aiarch.yaml").write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(tmp_path)


def test_generated_configs_are_valid(shop_projects):
    monolith = load_config(shop_projects["monolith"])
    assert monolith.architecture == "monolith" and list(monolith.services) == ["monolith"]
    microservices = load_config(shop_projects["microservices"])
    assert microservices.entrypoint[0] == "gateway"
    assert microservices.start_order() == ["inference", "gateway"]
    # Both architectures get the same CPU budget, so a comparison is fair.
    total = sum(s.resources.cpus for s in microservices.services.values())
    assert total == monolith.services["monolith"].resources.cpus
    document = yaml.safe_load((shop_projects["monolith"] / "aiarch.yaml").read_text())
    assert document["services"]["monolith"]["environment"]["MODEL_SIZE"] == "tiny"


def test_build_arguments_layer_yaml_environment_and_service_args(tmp_path: Path):
    from aiarch.errors import UserInputError
    from aiarch.runtime.base import Project
    from aiarch.runtime.docker import build_arguments

    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    (tmp_path / "ca.pem").write_text(pem)
    document = minimal(build={"args": {"PIP_FIND_LINKS": "/wheels"}})
    document["images"] = {"base": "base:1,app=special:2", "pip_index_url": "https://mirror.test/simple", "ca_bundle": "ca.pem"}
    (tmp_path / "aiarch.yaml").write_text(yaml.safe_dump(document))
    project = Project.load(tmp_path)
    assert build_arguments(project, "app", {}) == {
        "BASE_IMAGE": "special:2",
        "PIP_INDEX_URL": "https://mirror.test/simple",
        "CA_BUNDLE_PEM": pem,
        "PIP_FIND_LINKS": "/wheels",  # the service's own build.args win
    }
    from_env = build_arguments(project, "app", {"AIARCH_BASE_IMAGE": "env:3", "PIP_INDEX_URL": "https://env.test/simple"})
    assert from_env["BASE_IMAGE"] == "env:3" and from_env["PIP_INDEX_URL"] == "https://env.test/simple"
    (tmp_path / "ca.pem").write_text("not a certificate")
    with pytest.raises(UserInputError, match="must be PEM certificates"):
        build_arguments(project, "app", {})
    with pytest.raises(UserInputError, match="cannot read the CA bundle"):
        build_arguments(project, "app", {"AIARCH_CA_BUNDLE": str(tmp_path / "missing.pem")})


def test_a_key_given_twice_is_refused_with_its_line(tmp_path: Path):
    (tmp_path / "aiarch.yaml").write_text(
        "name: demo\narchitecture: monolith\nservices:\n  app:\n    command: [python, app.py]\n"
        "    port: 8000\n    entrypoint: true\n    port: 9000\n"
    )
    with pytest.raises(ConfigError, match=r"at line 8, column 5: duplicate key 'port'"):
        load_config(tmp_path)


def test_build_is_optional_for_services_run_as_local_processes():
    document = minimal()
    del document["services"]["app"]["build"]
    assert parse_config(document).services["app"].build is None


def test_changes_between_two_configs_are_named_by_path_and_secrets_stay_hidden():
    before = parse_config(minimal(environment={"BATCHING": "on", "DB_PASSWORD": "one"}))
    after = parse_config({**minimal(environment={"BATCHING": "off", "DB_PASSWORD": "two", "NEW": "1"}), "bench": {"users": 3}})
    assert config_changes(before, after) == [
        "services.app.environment.BATCHING: 'on' -> 'off'",
        "services.app.environment.NEW: '(unset)' -> '1'",
    ]  # bench: is how to load-test, not what runs; a secret's value is never shown
    assert without_secrets(before).services["app"].environment == {"BATCHING": "on", "DB_PASSWORD": "(hidden)"}
    assert config_changes(before, before) == []


def test_one_app_in_two_folders_gets_an_image_tag_per_folder(tmp_path: Path):
    from aiarch.runtime.base import Project
    from aiarch.runtime.docker import image_tag

    tags = []
    for folder in ("shop-python", "Shop Node!", "..hidden"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "aiarch.yaml").write_text(yaml.safe_dump(minimal()))
        tags.append(image_tag(Project.load(tmp_path / folder), "app"))
    assert tags == ["aiarch-demo-app:shop-python", "aiarch-demo-app:Shop-Node-", "aiarch-demo-app:hidden"]
