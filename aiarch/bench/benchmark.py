"""`aiarch bench`: every planned load point against the recorded deployment, one durable run
record, saved whatever happens (complete, interrupted or failed)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

from aiarch.bench.environment import capture_environment
from aiarch.bench.gpu import GpuSampler
from aiarch.bench.load import BenchOptions, plan
from aiarch.bench.runner import LiveView, run_trial
from aiarch.bench.trials import analyse_trial, pool
from aiarch.config import config_changes, without_secrets
from aiarch.errors import AiarchError, UserInputError, interrupted_exit_code
from aiarch.ids import new_id, utc_now_iso
from aiarch.run_record import GpuInfo, Point, RunRecord, save_run
from aiarch.runtime.base import Deployment, Project, http_probe, load_deployment


class BenchInterrupted(AiarchError):
    """Ctrl-C or SIGTERM: the load stopped, what was measured is saved, the deployment keeps
    running. INTERRUPTION is what stopped it (KeyboardInterrupt, or Terminated: exit 143)."""

    def __init__(self, message: str, hint: str | None, interruption: KeyboardInterrupt) -> None:
        super().__init__(message, hint)
        self.interruption = interruption
        self.exit_code = interrupted_exit_code(interruption)


def _target(project: Project) -> Deployment:
    deployment = load_deployment(project)
    if deployment is None:
        raise UserInputError(f"{project.config.name} is not up: nothing to load-test", hint="run `aiarch up` first")
    if deployment.state != "ready":
        raise UserInputError(
            f"{project.config.name} is not ready: its `aiarch up` is still waiting for the services, or was stopped",
            hint="wait for `aiarch up` to finish, or run `aiarch down` and `aiarch up` again",
        )
    service = project.config.services.get(deployment.entry_service)
    path = service.health_path if service else "/"
    reason = http_probe(f"{deployment.entry_url}{path}")
    if reason:
        raise UserInputError(
            f"the deployment does not answer at {deployment.entry_url} ({reason})",
            hint="check `aiarch ps`, or run `aiarch down` and `aiarch up` again",
        )
    return deployment


def bench(
    project_dir: Path,
    options: BenchOptions | None = None,
    on_progress: Callable[[LiveView], None] = lambda view: None,
) -> tuple[RunRecord, Path | None]:
    """Run the planned load against the project's deployment; returns (record, its path)."""
    project = Project.load(project_dir)
    bench_plan = plan(options or BenchOptions(), project.config.bench, project.path)
    deployment = _target(project)
    from aiarch.runtime import runtime_for

    runtime = runtime_for(deployment)
    gpu = GpuSampler()
    gpu_info = GpuInfo(available=gpu.available, reason=gpu.reason or None, devices=gpu.devices, driver=gpu.driver)
    record = RunRecord(
        id=new_id(2),
        created_at=utc_now_iso(),
        status="running",
        project=project.config.name,
        architecture=project.config.architecture,
        runtime=deployment.runtime,
        deployment=deployment,
        config=deployment.config or without_secrets(project.config),
        config_changed_after_up=config_changes(deployment.config, project.config) if deployment.config else [],
        plan=bench_plan,
        environment=capture_environment(project.path, runtime.engine_info(), gpu_info),
    )
    entry_environment = record.config.services[deployment.entry_service].environment
    probe = runtime.usage_probe(deployment)
    interruption: KeyboardInterrupt | None = None
    failure: str | None = None
    path: Path | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="aiarch-bench-") as scratch:
            for point_index, load in enumerate(bench_plan.loads):
                point = Point(load=load, load_description=load.describe())
                record.points.append(point)
                for trial_index in range(bench_plan.repeat):
                    label = f"point {point_index + 1}/{len(bench_plan.loads)}, trial {trial_index + 1}/{bench_plan.repeat}"
                    outcome = run_trial(
                        bench_plan, load, deployment.entry_url, project.path, entry_environment,
                        Path(scratch) / f"p{point_index}-t{trial_index}", probe, gpu, on_progress, label,
                    )  # fmt: skip
                    point.trials.append(analyse_trial(outcome, bench_plan, load, trial_index))
                    point.summary = pool(point.trials)
                    point.valid = all(trial.valid for trial in point.trials)
                    if outcome.interruption is not None:
                        raise outcome.interruption
    except KeyboardInterrupt as stopped:
        interruption = stopped
    except BaseException as error:
        failure = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        raise
    finally:
        probe.close()
        gpu.close()
        record.points = [point for point in record.points if point.trials]
        record.status = "failed" if failure else "interrupted" if interruption is not None else "complete"
        reasons = sorted({reason for point in record.points for trial in point.trials for reason in trial.reasons})
        if failure:
            reasons.append(f"aborted: {failure.splitlines()[0]}")
        if interruption is not None and not any("interrupted" in reason for reason in reasons):
            reasons.append("interrupted before the end of the run")
        if not record.points:
            reasons.append("nothing was measured")
        record.reasons = reasons
        record.valid = not reasons
        if record.points or interruption is not None:
            path = save_run(project.path, record)
    if interruption is not None:
        raise BenchInterrupted(
            f"interrupted: the load stopped; what was measured is saved in {path}",
            hint="the deployment is still running (`aiarch down` to remove it)",
            interruption=interruption,
        )
    return record, path
