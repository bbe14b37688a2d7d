import ast
import re
from pathlib import Path

import pytest

from aiarch import scaffold
from aiarch.errors import UserInputError
from aiarch.scaffold import new_project


@pytest.mark.parametrize("name", ["Shop", "1shop", "shop_app", "", "-shop", "a" * 64])
def test_invalid_names_are_refused(tmp_path: Path, name: str):
    with pytest.raises(UserInputError, match="not valid"):
        new_project(name, directory=tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["../shop", "a/b", "shop..x", "a\\b"])
def test_names_with_paths_are_refused(tmp_path: Path, name: str):
    with pytest.raises(UserInputError, match="path separator"):
        new_project(name, directory=tmp_path / "out")


def test_unknown_architecture_and_size_list_the_choices(tmp_path: Path):
    with pytest.raises(UserInputError, match="choose one of: monolith, microservices"):
        new_project("shop", "serverless", directory=tmp_path / "a")
    with pytest.raises(UserInputError, match="choose one of: tiny, small, large"):
        new_project("shop", "monolith", "huge", directory=tmp_path / "b")
    assert list(tmp_path.iterdir()) == []


def test_a_non_empty_folder_is_refused_unless_forced(tmp_path: Path):
    target = tmp_path / "shop"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(UserInputError, match="not empty"):
        new_project("shop", directory=target)
    assert [p.name for p in target.iterdir()] == ["notes.txt"]
    project = new_project("shop", directory=target, force=True)
    assert (target / "notes.txt").read_text() == "mine"
    assert (target / "aiarch.yaml").is_file() and len(project.files) > 20


def test_an_empty_folder_is_used(tmp_path: Path):
    (tmp_path / "shop").mkdir()
    assert new_project("shop", directory=tmp_path / "shop").path == tmp_path / "shop"


def test_a_failed_render_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def broken(folder, files, context):
        (folder / "half-written.txt").write_text("x")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(scaffold, "_render_into", broken)
    with pytest.raises(scaffold.AiarchError, match="could not write the project"):
        new_project("shop", directory=tmp_path / "shop")
    assert list(tmp_path.iterdir()) == []


def test_the_module_code_is_one_source_for_both_architectures(shop_projects):
    monolith, microservices = shop_projects["monolith"], shop_projects["microservices"]
    shared = sorted(p.relative_to(monolith) for p in (monolith / "shop").rglob("*.py"))
    assert len(shared) >= 8
    for relative in shared:
        assert (monolith / relative).read_bytes() == (microservices / relative).read_bytes(), relative
    assert sorted(p.relative_to(microservices) for p in (microservices / "shop").rglob("*.py")) == shared
    assert (monolith / "services/monolith/app.py").exists()
    assert not (monolith / "services/gateway").exists()


def test_the_gateway_image_has_neither_torch_nor_model_code(shop_projects):
    gateway = shop_projects["microservices"] / "services/gateway"
    requirements = [line for line in (gateway / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert requirements and not any("torch" in line for line in requirements)
    dockerfile = (gateway / "Dockerfile").read_text()
    assert "shop/model.py" not in dockerfile and "COPY shop/ " not in dockerfile
    copied = set(re.findall(r"shop/\w+\.py", dockerfile))
    for module in copied:  # every module the image copies is torch-free
        assert "import torch" not in (shop_projects["microservices"] / module).read_text(), module


@pytest.mark.parametrize(
    "service", ["monolith/services/monolith", "microservices/services/gateway", "microservices/services/inference"]
)
def test_dockerfiles_take_a_base_image_run_as_non_root_and_check_health(shop_projects, service: str):
    arch, path = service.split("/", 1)
    dockerfile = (shop_projects[arch] / path / "Dockerfile").read_text()
    lines = dockerfile.splitlines()
    assert lines.index("ARG BASE_IMAGE=python:3.11-slim") < lines.index("FROM ${BASE_IMAGE}")
    assert re.search(r"^USER 10001:10001$", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    # every file the image copies exists in the project
    project = shop_projects[arch]
    for copied in re.findall(r"(?:COPY|\s)((?:shop|services)/[\w/.]*)", dockerfile):
        assert (project / copied).exists(), copied


@pytest.mark.parametrize(
    "service", ["monolith/services/monolith", "microservices/services/gateway", "microservices/services/inference"]
)
def test_each_image_copies_every_shop_module_its_service_imports(shop_projects, service: str):
    """Follow the imports from the service's entry module: each shop module reached must be in
    the image (the images copy only the modules they run)."""
    arch, path = service.split("/", 1)
    project = shop_projects[arch]
    copied = set(re.findall(r"shop/(\w+)\.py", (project / path / "Dockerfile").read_text()))
    reached: set[str] = set()
    pending = [project / path / "app.py"]
    while pending:
        tree = ast.parse(pending.pop().read_text())
        for node in ast.walk(tree):
            names = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            names += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            for name in names:
                if name.startswith("shop.") and (module := name.split(".")[1]) not in reached:
                    reached.add(module)
                    pending.append(project / "shop" / f"{module}.py")
    assert reached and reached <= copied, f"imported but not copied: {sorted(reached - copied)}"
