"""The `aiarch` command line. Each command parses its flags, calls one core function and hands
the result to aiarch.terminal; errors become one red line and a documented exit code.

Nothing heavy is imported here (no torch, Docker, Locust, Jinja or pydantic) so that
`aiarch --help` is instant; each command imports what it needs.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from aiarch import __version__
from aiarch.errors import AiarchError, UserInputError, interrupted_exit_code

app = typer.Typer(
    name="aiarch",
    help="Monolith or microservices for your AI app? Scaffold both, deploy, load-test, compare.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@contextmanager
def _user_errors() -> Iterator[None]:
    """Turn the errors a user can act on into one line on stderr and an exit code; SIGTERM
    interrupts the command as Ctrl-C does (same clean-up), with exit code 143 instead of 130."""
    from aiarch.signals import sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            yield
    except AiarchError as error:
        from aiarch import terminal

        terminal.show_error(error)
        raise typer.Exit(error.exit_code) from None
    except KeyboardInterrupt as interruption:
        from aiarch import terminal

        terminal.show_interrupted()
        raise typer.Exit(interrupted_exit_code(interruption)) from None


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"aiarch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_show_version,
            is_eager=True,
            help="Print aiarch's version and exit.",
        ),
    ] = False,
) -> None:
    """Monolith or microservices for your AI app? Scaffold both, deploy, load-test, compare.

    Exit codes: 0 success, 1 the work failed, 2 bad input, 130 interrupted (Ctrl-C),
    143 terminated (SIGTERM).
    """


@app.command()
def new(
    name: Annotated[str, typer.Argument(help="Project name: lower-case letters, digits and '-'.")],
    arch: Annotated[
        str,
        typer.Option(
            "--arch",
            "-a",
            help="Architecture: monolith (one service) or microservices (gateway + inference).",
            metavar="monolith|microservices",
        ),
    ] = "monolith",
    model_size: Annotated[
        str,
        typer.Option(
            "--model-size",
            "-m",
            help="Recommender size: tiny (tests), small (default, CPU), large (GPU-sized).",
            metavar="tiny|small|large",
        ),
    ] = "small",
    directory: Annotated[
        Path | None,
        typer.Option(
            "--dir",
            "-d",
            help="Folder to write the project into (default: ./NAME).",
            file_okay=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Write into a folder that is not empty, replacing our files."),
    ] = False,
) -> None:
    """Scaffold the PyTorch shop app as a monolith or as microservices from one set of modules."""
    with _user_errors():
        from aiarch import terminal
        from aiarch.scaffold import new_project

        project = new_project(name, arch, model_size, directory, force)
        terminal.show_new_project(project)


Runtime = Annotated[
    str | None,
    typer.Option(
        "--runtime",
        "-r",
        help="docker, local or swarm (default: docker when an engine answers, else local processes; swarm: "
        "services of the engine's active swarm).",
        metavar="docker|local|swarm",
    ),
]
ProjectDir = Annotated[
    Path,
    typer.Option("--project", "-p", help="The project folder (holds aiarch.yaml).", file_okay=False),
]


@app.command()
def up(
    project: ProjectDir = Path("."),
    runtime: Runtime = None,
    replicas: Annotated[
        list[str] | None,
        typer.Option("--replicas", help="SERVICE=N replicas, overriding aiarch.yaml; repeatable.", metavar="SERVICE=N"),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option("--port", help="Host port for the entry service on 127.0.0.1 (default: a free one)."),
    ] = None,
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Build images without the cache.")] = False,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds each service has to become ready.", min=0.1)] = 120.0,
    cpus: Annotated[
        str | None,
        typer.Option("--cpus", help="CPUs of the services: auto or a list such as 1-3 (default: placement.service_cpus)."),
    ] = None,
    loadgen_cpus: Annotated[
        str | None,
        typer.Option(
            "--loadgen-cpus",
            help="CPUs kept free for the load generator: auto, a list such as 0, or none (default: placement.loadgen_cpus).",
        ),
    ] = None,
    faults: Annotated[
        bool,
        typer.Option(
            "--faults",
            help="Turn the app's fault switch on (aiarch.yaml faults:), for `aiarch experiment fault`; never on by default.",
        ),
    ] = False,
) -> None:
    """Deploy the project (build, start dependencies first, wait until ready) and record it."""
    with _user_errors():
        from aiarch import runtime as runtimes
        from aiarch import terminal

        replica_counts = runtimes.parse_replica_flags(replicas or [])
        with terminal.progress("aiarch up") as reporter:
            result = runtimes.up(
                project,
                runtime,
                replica_counts,
                port,
                rebuild,
                timeout,
                reporter,
                service_cpus=cpus,
                loadgen_cpus=loadgen_cpus,
                faults=faults,
            )
        terminal.show_deployment(result.deployment)


@app.command()
def down(
    project: ProjectDir = Path("."),
    images: Annotated[bool, typer.Option("--images", help="Also remove the images aiarch built.")] = False,
) -> None:
    """Remove everything the project's deployment started, leftovers of crashed runs included."""
    with _user_errors():
        from aiarch import runtime as runtimes
        from aiarch import terminal

        terminal.show_down(runtimes.down(project, images))


@app.command()
def ps(project: ProjectDir = Path(".")) -> None:
    """Services, replicas, readiness, endpoints, CPU and memory now."""
    with _user_errors():
        from aiarch import runtime as runtimes
        from aiarch import terminal

        terminal.show_status(runtimes.status(project))


@app.command()
def redeploy(
    service: Annotated[str, typer.Argument(help="The service to update, replica by replica.")],
    project: ProjectDir = Path("."),
    set_env: Annotated[
        list[str] | None,
        typer.Option("--set", help="NAME=VALUE in the new replicas' environment; repeatable.", metavar="NAME=VALUE"),
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Docker: build the service's image again first (after a code change).")
    ] = False,
    drain_timeout: Annotated[
        str | None, typer.Option("--drain-timeout", help="How long an old replica's requests in flight may take (default: 30s).")
    ] = None,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds each new replica has to become ready.", min=0.1)] = 120.0,
) -> None:
    """Rolling update of one service: each replica's successor starts, gets ready, takes requests
    from the load balancer; then the old one is drained and stopped. A successor that never gets
    ready is rolled back (the old replicas serve throughout). With one replica (no balancer), the
    old one stops first: its requests fail until the new one is ready. Exit codes: 0 done, 1
    rolled back, 2 bad input, 130 interrupted (the steps done are kept; `aiarch ps` shows each
    replica's revision)."""
    with _user_errors():
        from aiarch import runtime as runtimes
        from aiarch import terminal
        from aiarch.config import parse_duration_option
        from aiarch.runtime.rollout import DEFAULT_DRAIN_TIMEOUT_S, RedeployRequest, RolloutFailed, RolloutInterrupted, parse_set

        drain_s = parse_duration_option("--drain-timeout", drain_timeout)
        request = RedeployRequest(
            service=service,
            set_env=parse_set(set_env or []),
            rebuild=rebuild,
            drain_timeout_s=DEFAULT_DRAIN_TIMEOUT_S if drain_s is None else drain_s,
            ready_timeout_s=timeout,
        )
        try:
            with terminal.progress(f"aiarch redeploy {service}") as reporter:
                result = runtimes.redeploy(project, request, reporter)
        except RolloutFailed as failure:
            terminal.show_rollout(failure.result)
            raise
        except RolloutInterrupted as interruption:
            terminal.show_rollout(interruption.result)
            raise interruption.original from None  # its exit code: 130 for Ctrl-C, 143 for SIGTERM
        terminal.show_rollout(result)


@app.command()
def logs(
    service: Annotated[str, typer.Argument(help="The service whose logs to show.")],
    project: ProjectDir = Path("."),
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C.")] = False,
    tail: Annotated[int | None, typer.Option("--tail", "-n", help="Only the last N lines of each replica.", min=0)] = None,
) -> None:
    """Print a service's logs (every replica, prefixed when there are several)."""
    with _user_errors():
        from aiarch import runtime as runtimes

        for line in runtimes.logs(project, service, tail, follow):
            typer.echo(line)


@app.command()
def bench(
    project: Annotated[
        list[Path] | None,
        typer.Option(
            "--project",
            "-p",
            help="The project folder; give two or more to bench them interleaved (A B, B A, ...), one record each.",
            file_okay=False,
        ),
    ] = None,
    users: Annotated[
        int | None, typer.Option("--users", "-u", help="Closed loop: concurrent users (default: bench.users).")
    ] = None,
    spawn_rate: Annotated[float | None, typer.Option("--spawn-rate", help="Closed loop: users started per second.")] = None,
    rate: Annotated[
        float | None, typer.Option("--rate", help="Open loop: requests per second, timed from each intended send.")
    ] = None,
    arrivals: Annotated[
        str | None,
        typer.Option(
            "--arrivals",
            help="Open loop schedule: constant or poisson (default: constant; poisson for --capacity).",
            metavar="constant|poisson",
        ),
    ] = None,
    duration: Annotated[
        str | None, typer.Option("--duration", "-d", help="Measured time per trial, e.g. 30s, 2m (default: bench.duration).")
    ] = None,
    warmup: Annotated[
        str | None, typer.Option("--warmup", help="Load before measuring, excluded from every statistic (default: bench.warmup).")
    ] = None,
    repeat: Annotated[int, typer.Option("--repeat", help="Trials per load point.")] = 1,
    sweep: Annotated[str | None, typer.Option("--sweep", help="Load points: users=1,4,16 or rate=10,50,100.")] = None,
    processes: Annotated[int, typer.Option("--processes", help="Load-generator processes (Locust workers).")] = 1,
    scenario: Annotated[
        Path | None, typer.Option("--scenario", help="Locust file, relative to the project (default: bench.scenario).")
    ] = None,
    max_error_rate: Annotated[
        float, typer.Option("--max-error-rate", help="A trial with more errors than this share is invalid.")
    ] = 0.01,
    min_requests: Annotated[int, typer.Option("--min-requests", help="A trial with fewer measured requests is invalid.")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Seed for Poisson arrivals and open-loop task choice.")] = 0,
    loadgen_cpus: Annotated[
        str | None,
        typer.Option(
            "--loadgen-cpus",
            help="CPUs of the load generator: auto (those the services do not use), a list such as 0, or none "
            "(default: placement.loadgen_cpus).",
        ),
    ] = None,
    capacity: Annotated[
        bool,
        typer.Option(
            "--capacity",
            help="Search the highest open-loop rate at which the objective holds (default objective: bench.slo).",
        ),
    ] = False,
    slo: Annotated[
        list[str] | None,
        typer.Option(
            "--slo",
            help="The objective of --capacity (implies it): p50/p90/p95/p99/p99.9=LATENCY and errors=SHARE; repeatable, "
            "e.g. --slo p99=50ms --slo errors=1%.",
            metavar="NAME=VALUE",
        ),
    ] = None,
    start_rate: Annotated[
        float | None, typer.Option("--start-rate", help="--capacity: the first step's rate (default: bench.capacity.start_rate).")
    ] = None,
    max_rate: Annotated[
        float | None, typer.Option("--max-rate", help="--capacity: the highest rate tried (default: bench.capacity.max_rate).")
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option("--precision", help="--capacity: stop when the bracket is within this share of the rate, e.g. 5%."),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option("--budget", help="--capacity: time for the whole search, e.g. 10m (default: bench.capacity.budget)."),
    ] = None,
    url: Annotated[
        list[str] | None,
        typer.Option(
            "--url",
            help="Bench a deployment aiarch did not start (on Kubernetes, say) at this base URL, with its project's "
            "scenario; one per --project. Its services' CPU and memory are recorded as unmeasured.",
        ),
    ] = None,
    arch: Annotated[
        list[str] | None,
        typer.Option("--arch", help="With --url: the architecture that compare labels it with (default: its project's)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            help="Let N Locust workers on other machines send the load (each started with "
            "`aiarch loadgen worker --master HOST:PORT`); every trial waits for all N.",
        ),
    ] = None,
    master_bind: Annotated[
        str | None,
        typer.Option(
            "--master-bind",
            help="With --workers: where this machine's Locust master listens for them (default 127.0.0.1:5557). "
            "0.0.0.0:5557 lets other machines in (Locust's port has no authentication: firewall it to them).",
            metavar="HOST:PORT",
        ),
    ] = None,
    workers_wait: Annotated[
        str | None,
        typer.Option("--workers-wait", help="With --workers: how long a trial waits for them to connect (default 60s)."),
    ] = None,
) -> None:
    """Load-test the running deployment(s) with Locust and save an exact run record for each."""
    with _user_errors():
        from aiarch import terminal
        from aiarch.bench import BenchOptions, Thresholds, bench_interleaved, parse_sweep, parse_url
        from aiarch.config import parse_duration_option, parse_share

        if arrivals not in (None, "constant", "poisson"):
            raise UserInputError(f"--arrivals {arrivals!r}: choose constant or poisson")
        if workers is not None and workers < 1:
            raise UserInputError(
                f"--workers must be >= 1 (got {workers})", hint="leave it out to send the load from this machine"
            )
        if workers is None and (master_bind is not None or workers_wait is not None):
            flag = "--master-bind" if master_bind is not None else "--workers-wait"
            raise UserInputError(f"{flag} belongs to --workers", hint="add --workers N (the workers that send the load)")
        searching = capacity or bool(slo)
        options = BenchOptions(
            users=users,
            spawn_rate=spawn_rate,
            rate=rate,
            arrivals="poisson" if arrivals == "poisson" or (searching and arrivals is None) else "constant",
            duration_s=parse_duration_option("--duration", duration),
            warmup_s=parse_duration_option("--warmup", warmup),
            repeat=repeat,
            sweep=parse_sweep(sweep) if sweep else None,
            processes=processes,
            scenario=scenario,
            thresholds=Thresholds(max_error_rate=max_error_rate, min_requests=min_requests),
            seed=seed,
            loadgen_cpus=loadgen_cpus,
            urls=tuple(parse_url(text) for text in url or ()),
            architectures=tuple(arch or ()),
            workers=workers,
            master=master_bind or "127.0.0.1:5557",
            workers_wait_s=parse_duration_option("--workers-wait", workers_wait or "60s"),
        )
        if not searching:
            given = [flag for flag, value in (("--start-rate", start_rate), ("--max-rate", max_rate), ("--precision", precision),
                     ("--budget", budget)) if value is not None]  # fmt: skip
            if given:
                raise UserInputError(
                    f"{given[0]} belongs to a capacity search", hint="add --capacity (or an objective: --slo p99=50ms)"
                )
            with terminal.bench_progress() as on_progress:
                results = bench_interleaved(project or [Path(".")], options, on_progress)
        else:
            from aiarch.experiments import CapacityOptions, bench_capacity

            try:
                share = None if precision is None else parse_share(precision)
            except ValueError as error:
                raise UserInputError(f"--precision: {error}") from None
            searched = CapacityOptions(
                slo=tuple(slo or ()), start_rate=start_rate, max_rate=max_rate, precision=share,
                budget_s=parse_duration_option("--budget", budget),
            )  # fmt: skip
            with terminal.bench_progress() as on_progress:
                results = bench_capacity(project or [Path(".")], options, searched, on_progress, terminal.show_step)
        for record, path in results:
            terminal.show_run(record, path)


export_app = typer.Typer(help="Write deployment files for other platforms from aiarch.yaml.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@export_app.command("kubernetes")
def export_kubernetes_command(
    project: ProjectDir = Path("."),
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            file_okay=False,
            help="Folder to write (default: PROJECT/k8s); replaced only when empty or an earlier export.",
        ),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option("--registry", help="Image prefix, e.g. ghcr.io/me (default: none; load the images into the cluster)."),
    ] = None,
    namespace: Annotated[
        str | None, typer.Option("--namespace", "-n", help="Add a Namespace (restricted Pod Security) and put everything in it.")
    ] = None,
    autoscale: Annotated[
        bool, typer.Option("--autoscale/--no-autoscale", help="An HPA on the model's service (needs its resources.cpus).")
    ] = True,
    min_replicas: Annotated[
        int | None, typer.Option("--min-replicas", help="The HPA's minimum (default: the model service's replicas).")
    ] = None,
    max_replicas: Annotated[
        int | None, typer.Option("--max-replicas", help="The HPA's maximum (default: 4 x the minimum, at least 4).")
    ] = None,
    target_cpu: Annotated[
        int, typer.Option("--target-cpu", help="The HPA's CPU utilization target, % of the request (1-100).")
    ] = 70,
) -> None:
    """Write Kubernetes manifests for the project (Deployments, Services, PDBs, an HPA, NetworkPolicies) and a README.

    The same images, environment, probes, budgets and hardening as `aiarch up` on Docker.
    Exit codes: 0 written, 1 the files could not be written, 2 bad input (aiarch.yaml, flags,
    an output folder holding files an earlier export did not write).
    """
    with _user_errors():
        from aiarch import terminal
        from aiarch.export.kubernetes import KubernetesOptions, export_kubernetes

        options = KubernetesOptions(
            registry=registry, namespace=namespace, autoscale=autoscale,
            min_replicas=min_replicas, max_replicas=max_replicas, target_cpu_percent=target_cpu,
        )  # fmt: skip
        terminal.show_kubernetes_export(export_kubernetes(project, output, options))


loadgen_app = typer.Typer(
    help="The load generator on other machines: workers that send a share of `aiarch bench --workers N`.",
    no_args_is_help=True,
)
app.add_typer(loadgen_app, name="loadgen")


@loadgen_app.command("worker")
def loadgen_worker(
    master: Annotated[
        str,
        typer.Option(
            "--master",
            help="Where `aiarch bench --workers N` listens (its --master-bind), e.g. 10.0.0.5:5557.",
            metavar="HOST:PORT",
        ),
    ],
    project: Annotated[
        Path,
        typer.Option(
            "--project",
            "-p",
            file_okay=False,
            help="Run in this folder (a copy of the project), for a scenario that imports the project's modules.",
        ),
    ] = Path("."),
    processes: Annotated[
        int, typer.Option("--processes", help="Locust processes on this machine; --workers counts each one.")
    ] = 1,
    wait: Annotated[str, typer.Option("--wait", help="How long to wait for the master's next trial before stopping.")] = "60s",
) -> None:
    """Send a share of a bench run's load from this machine (as a Locust worker of each trial).

    The scenario and the load's settings come from the master (`aiarch bench --workers N`); the
    worker joins every trial in turn and stops when none starts for --wait."""
    with _user_errors():
        from aiarch import terminal
        from aiarch.bench.worker import run_worker
        from aiarch.config import parse_duration_option

        run_worker(master, project, processes, parse_duration_option("--wait", wait), terminal.show_note)


experiment_app = typer.Typer(
    help="Experiments that settle one claim each with measurements (fault isolation, independent scaling).",
    no_args_is_help=True,
)
app.add_typer(experiment_app, name="experiment")


# The load options every experiment under open-loop load takes.
RunsPerProject = Annotated[int, typer.Option("--repeat", help="Runs per project, for intervals over runs.", min=1)]
LoadProcesses = Annotated[int, typer.Option("--processes", help="Load-generator processes (Locust workers).")]
Scenario = Annotated[
    Path | None, typer.Option("--scenario", help="Locust file, relative to the project (default: bench.scenario).")
]
ExperimentLoadgenCpus = Annotated[
    str | None,
    typer.Option(
        "--loadgen-cpus", help="CPUs of the load generator: auto, a list such as 0, or none (default: placement.loadgen_cpus)."
    ),
]


@experiment_app.command("fault")
def experiment_fault(
    project: Annotated[
        list[Path] | None,
        typer.Option(
            "--project",
            "-p",
            help="The project folder; give both architectures to run them in turn (A B, B A), one record each.",
            file_okay=False,
        ),
    ] = None,
    kind: Annotated[str, typer.Option("--kind", "-k", help="kill, crash, oom, hang or latency.", metavar="KIND")] = "kill",
    service: Annotated[
        str | None, typer.Option("--service", "-s", help="Where the fault lands (default: the service with role: model).")
    ] = None,
    replicas: Annotated[
        str, typer.Option("--replicas", help="kill or hang one replica of the service, or all.", metavar="one|all")
    ] = "one",
    rate: Annotated[
        float | None, typer.Option("--rate", "-r", help="Open-loop requests per second, below capacity (default: 60).")
    ] = None,
    duration: Annotated[str | None, typer.Option("--duration", "-d", help="The whole run, e.g. 30s (default).")] = None,
    at: Annotated[
        str | None, typer.Option("--at", help="When the fault lands, from the load's start (default: a third of the run).")
    ] = None,
    lasting: Annotated[
        str | None, typer.Option("--for", help="hang and latency: how long the fault lasts (default: 5s).")
    ] = None,
    delay: Annotated[str | None, typer.Option("--delay", help="latency: added to each model call, e.g. 200ms (default).")] = None,
    slo: Annotated[
        list[str] | None,
        typer.Option(
            "--slo", help="The objective each window must meet to count as recovered (default: bench.slo).", metavar="p99=50ms"
        ),
    ] = None,
    repeat: RunsPerProject = 1,
    processes: LoadProcesses = 1,
    scenario: Scenario = None,
    loadgen_cpus: ExperimentLoadgenCpus = None,
) -> None:
    """A fault under open-loop load, and what each endpoint's users saw until it recovered.

    The fault lands in the service that holds the model (aiarch.yaml `role: model`): kill (SIGKILL
    to its process, the restart policy brings it back), crash (a bad request crashes it: needs
    `aiarch up --faults`), oom (a leak up to its memory limit: --faults), hang (frozen --for
    seconds), latency (--delay per model call for --for seconds: --faults). Every fault is reverted
    whatever happens, Ctrl-C included; the deployment is checked ready afterwards. Exit codes: 0
    done, 1 the fault was not injected or a replica is not ready afterwards, 2 bad input, 130
    interrupted.
    """
    with _user_errors():
        from aiarch import terminal
        from aiarch.bench import BenchOptions
        from aiarch.config import parse_duration_option
        from aiarch.experiments.fault import FaultOptions, fault_experiment

        delay_s = parse_duration_option("--delay", delay)
        options = FaultOptions(
            kind=kind.strip().lower(),
            service=service,
            replicas=replicas.strip().lower(),
            rate=rate,
            duration_s=parse_duration_option("--duration", duration),
            at_s=parse_duration_option("--at", at),
            for_s=parse_duration_option("--for", lasting),
            delay_ms=None if delay_s is None else delay_s * 1000.0,
            slo=tuple(slo or ()),
        )
        bench_options = BenchOptions(repeat=repeat, processes=processes, scenario=scenario, loadgen_cpus=loadgen_cpus)
        with terminal.bench_progress() as on_progress:
            results = fault_experiment(project or [Path(".")], bench_options, options, on_progress, terminal.show_fault_event)
        for record, path in results:
            terminal.show_run(record, path)
        if any(
            problem for record, _ in results for run in (record.fault.runs if record.fault else []) for problem in run.problems()
        ):
            raise typer.Exit(1)


@experiment_app.command("redeploy")
def experiment_redeploy(
    project: Annotated[
        list[Path] | None,
        typer.Option(
            "--project",
            "-p",
            help="The project folder (up); give both architectures to run them in turn (A B, B A), one record each.",
            file_okay=False,
        ),
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", "-s", help="The service to redeploy (default: the service with role: model).")
    ] = None,
    set_env: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="NAME=VALUE in the new replicas (default: MODEL_VERSION=<next revision>, a new version each run).",
            metavar="NAME=VALUE",
        ),
    ] = None,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Docker: build the service's image again first (its build time is measured).")
    ] = False,
    rate: Annotated[
        float | None, typer.Option("--rate", "-r", help="Open-loop requests per second, below capacity (default: 60).")
    ] = None,
    duration: Annotated[str | None, typer.Option("--duration", "-d", help="The whole run, e.g. 60s (default).")] = None,
    at: Annotated[str | None, typer.Option("--at", help="When the rollout starts, from the load's start (default: 10s).")] = None,
    drain_timeout: Annotated[
        str | None, typer.Option("--drain-timeout", help="How long an old replica's requests in flight may take (default: 30s).")
    ] = None,
    slo: Annotated[
        list[str] | None,
        typer.Option("--slo", help="The objective of the per-second windows (default: bench.slo).", metavar="p99=50ms"),
    ] = None,
    repeat: RunsPerProject = 1,
    processes: LoadProcesses = 1,
    scenario: Scenario = None,
    loadgen_cpus: ExperimentLoadgenCpus = None,
) -> None:
    """A rolling update of the model's service under open-loop load, and what the users saw.

    `aiarch redeploy` runs --at seconds into the load (the monolith's only service, the
    microservices' inference): failed requests, p99 during the rollout against before, the
    rollout's time, how long two versions answered side by side, which version answered each
    request (bench.version_header), and with --rebuild the image's build time and new layers. The
    deployment keeps the new revision. Exit codes: 0 done, 1 a rollout rolled back or a replica
    not ready afterwards, 2 bad input, 130 interrupted (the rollout stops after the replica in
    progress).
    """
    with _user_errors():
        from aiarch import terminal
        from aiarch.bench import BenchOptions
        from aiarch.config import parse_duration_option
        from aiarch.experiments.redeploy import RedeployOptions, redeploy_experiment

        options = RedeployOptions(
            service=service,
            set_env=tuple(set_env or ()),
            rebuild=rebuild,
            rate=rate,
            duration_s=parse_duration_option("--duration", duration),
            at_s=parse_duration_option("--at", at),
            drain_timeout_s=parse_duration_option("--drain-timeout", drain_timeout),
            slo=tuple(slo or ()),
        )
        bench_options = BenchOptions(repeat=repeat, processes=processes, scenario=scenario, loadgen_cpus=loadgen_cpus)
        with terminal.bench_progress() as on_progress:
            results = redeploy_experiment(project or [Path(".")], bench_options, options, on_progress, terminal.show_fault_event)
        for record, path in results:
            terminal.show_run(record, path)
        if any(
            problem
            for record, _ in results
            for run in (record.redeploy.runs if record.redeploy else [])
            for problem in run.problems()
        ):
            raise typer.Exit(1)


@experiment_app.command("scale")
def experiment_scale(
    replicas: Annotated[str, typer.Option("--replicas", help="The replica counts to measure, e.g. 1,2,4.", metavar="N,N,...")],
    project: Annotated[
        list[Path] | None,
        typer.Option("--project", "-p", help="Project folder(s), not up; repeatable (default: .).", file_okay=False),
    ] = None,
    service: Annotated[
        str | None, typer.Option("--service", "-s", help="The service to scale (default: the service with role: model).")
    ] = None,
    runtime: Runtime = None,
    slo: Annotated[
        list[str] | None,
        typer.Option("--slo", help="The objective of each capacity search (default: bench.slo).", metavar="p99=50ms"),
    ] = None,
    start_rate: Annotated[float | None, typer.Option("--start-rate", help="Each search's first rate (req/s).")] = None,
    max_rate: Annotated[float | None, typer.Option("--max-rate", help="The highest rate tried (req/s).")] = None,
    precision: Annotated[
        str | None, typer.Option("--precision", help="Stop when the bracket is within this share of the rate, e.g. 10%.")
    ] = None,
    duration: Annotated[str | None, typer.Option("--duration", "-d", help="Measured time per step (default: 5s).")] = None,
    warmup: Annotated[str | None, typer.Option("--warmup", help="Warm-up before each step (default: 2s).")] = None,
    repeat: Annotated[int, typer.Option("--repeat", help="Capacity searches per point, for intervals over searches.", min=1)] = 1,
    processes: Annotated[int, typer.Option("--processes", help="Load-generator processes (Locust workers).")] = 1,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for the comparison's reports.", file_okay=False)
    ] = None,
) -> None:
    """Capacity at the objective for each replica count of the model's service, then compared.

    For each count, every project is deployed with the service at that count (a load balancer in
    front of several replicas), their capacity searches run interleaved, and the deployments are
    taken down. The comparison puts capacity against the reserved budget per architecture, with
    throughput per vCPU and per GiB, speedup, efficiency and memory per replica. Exit codes: 0
    done, 1 a deployment or search failed, 2 bad input (a project already up, an unknown
    service, a sweep that does not parse), 130 interrupted (what was measured is kept).
    """
    with _user_errors():
        from aiarch import terminal
        from aiarch.bench import BenchOptions
        from aiarch.compare import compare as run_compare
        from aiarch.config import parse_duration_option, parse_share
        from aiarch.experiments import CapacityOptions
        from aiarch.experiments.scale import ScaleOptions, parse_sweep, scale_experiment

        try:
            share = None if precision is None else parse_share(precision)
        except ValueError as error:
            raise UserInputError(f"--precision: {error}") from None
        options = ScaleOptions(replicas=parse_sweep(replicas), service=service, runtime=runtime)
        searched = CapacityOptions(slo=tuple(slo or ()), start_rate=start_rate, max_rate=max_rate, precision=share)
        bench_options = BenchOptions(
            duration_s=parse_duration_option("--duration", duration),
            warmup_s=parse_duration_option("--warmup", warmup),
            repeat=repeat,
            processes=processes,
            arrivals="poisson",
        )
        projects = project or [Path(".")]
        with terminal.progress("aiarch experiment scale") as reporter:
            results = scale_experiment(
                projects, bench_options, searched, options, reporter, reporter.bench_line, terminal.show_step
            )
        saved = [str(path) for _, path in results if path]
        terminal.show_comparison(run_compare(saved, projects, output=output))


@app.command()
def runs(project: ProjectDir = Path(".")) -> None:
    """List the project's run records, oldest first."""
    with _user_errors():
        from aiarch import terminal
        from aiarch.bench import list_runs

        terminal.show_runs(list_runs(project.expanduser().absolute()))


@app.command()
def compare(
    runs: Annotated[list[str] | None, typer.Argument(help="Run ids (or unique prefixes) or run record files.")] = None,
    project: Annotated[
        list[Path] | None,
        typer.Option(
            "--project", "-p", help="Project folder(s) whose runs to look in; repeatable (default: .).", file_okay=False
        ),
    ] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="Add the newest complete run of each architecture in each project.")
    ] = False,
    baseline: Annotated[
        str | None,
        typer.Option("--baseline", help="The run the others are compared against (default: the monolith's, else the first)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for report.md, report.html and report.json.", file_okay=False)
    ] = None,
    seed: Annotated[
        int, typer.Option("--seed", help="Seed of the bootstrap: the same runs and seed give the same intervals.")
    ] = 0,
    prices: Annotated[
        Path | None,
        typer.Option(
            "--prices",
            help="Price sheet (YAML: per_vcpu_hour, per_gib_hour, per_gpu_hour) for cost per million requests "
            "(default: aiarch's sheet, OpenCost's default prices).",
            dir_okay=False,
        ),
    ] = None,
) -> None:
    """Put runs side by side: differences with 95% confidence intervals, a verdict per claim, reports."""
    with _user_errors():
        from aiarch import terminal
        from aiarch.compare import compare as run_compare

        terminal.show_comparison(run_compare(runs or [], project or [Path(".")], latest, baseline, output, seed, prices))


@app.command()
def demo(
    directory: Annotated[
        Path, typer.Option("--dir", "-d", help="Work folder for the two projects and the report.", file_okay=False)
    ] = Path("aiarch-demo"),
    runtime: Runtime = None,
    model_size: Annotated[
        str, typer.Option("--model-size", "-m", help="tiny (default, quick), small or large.", metavar="tiny|small|large")
    ] = "tiny",
    quick: Annotated[
        bool, typer.Option("--quick", help="A closed loop of --users instead of the capacity search (about a minute).")
    ] = False,
    slo: Annotated[
        list[str] | None,
        typer.Option("--slo", help="The capacity search's objective (default: bench.slo, p99=50ms).", metavar="NAME=VALUE"),
    ] = None,
    users: Annotated[int, typer.Option("--users", "-u", help="--quick: closed-loop users for both benches.", min=1)] = 8,
    duration: Annotated[
        str | None, typer.Option("--duration", help="Measured time per trial (--quick: 10s) or per search step (3s).")
    ] = None,
    warmup: Annotated[
        str | None, typer.Option("--warmup", help="Warm-up before each trial (--quick: 3s) or search step (1s).")
    ] = None,
    repeat: Annotated[
        int | None,
        typer.Option("--repeat", help="Trials (--quick: 3) or capacity searches (2) per architecture, interleaved.", min=1),
    ] = None,
) -> None:
    """Run the whole loop once: scaffold both architectures, deploy, search each one's capacity, tear down, compare."""
    with _user_errors():
        from aiarch import terminal
        from aiarch.config import parse_duration_option
        from aiarch.demo import DEMO_PRECISION, DEMO_SEARCHES, DEMO_STEP_S, DEMO_STEP_WARMUP_S, run_demo
        from aiarch.experiments import CapacityOptions

        if quick and slo:
            raise UserInputError("--slo is the capacity search's objective; --quick runs a closed loop instead", hint="drop one")
        measured_s = parse_duration_option("--duration", duration)
        warmup_s = parse_duration_option("--warmup", warmup)
        searched = None if quick else CapacityOptions(slo=tuple(slo or ()), precision=DEMO_PRECISION)
        with terminal.progress("aiarch demo") as reporter:
            result = run_demo(
                directory, runtime, model_size, users,
                measured_s if measured_s is not None else 10.0 if quick else DEMO_STEP_S,
                warmup_s if warmup_s is not None else 3.0 if quick else DEMO_STEP_WARMUP_S,
                repeat or (3 if quick else DEMO_SEARCHES),
                reporter, reporter.bench_line, searched, terminal.show_step,
            )  # fmt: skip
        terminal.show_comparison(result.comparison)


def main() -> None:
    app()
