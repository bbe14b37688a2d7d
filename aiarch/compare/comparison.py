"""`aiarch compare`: side by side, differences against a baseline with 95% confidence
intervals, the claims scorecard, and the reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiarch.compare.analysis import (
    NOT_MEASURED_YET,
    ClaimCard,
    Differences,
    RunFigures,
    blocked,
    differences_against,
    figures,
    scorecard,
    verdict,
)
from aiarch.compare.capacity import (
    CapacityFigures,
    CostFigures,
    capacity_difference,
    capacity_figures,
    capacity_verdict,
    cost_figures,
    cost_line,
    merge_steps,
    per_budget_line,
    pick_common_step,
)
from aiarch.compare.faults import FaultFigures, fault_figures, fault_verdict
from aiarch.compare.prices import PriceSheet, load_prices
from aiarch.compare.redeploys import CLAIM as REDEPLOY_CLAIM
from aiarch.compare.redeploys import RedeployFigures, redeploy_figures, redeploy_verdict
from aiarch.compare.scaling import ScalingFigures, is_scaling, scaling_card, scaling_figures
from aiarch.compare.selection import Run, differences_besides_architecture, pick_points, resolve_runs
from aiarch.compare.stats import Difference
from aiarch.errors import UserInputError
from aiarch.ids import new_id
from aiarch.run_record import RunRecord

COMPARISON_SCHEMA = "aiarch.comparison/6"


@dataclass
class Comparison:
    runs: list[Run]
    baseline: Run
    table: list[RunFigures]
    differences: dict[str, Differences]  # run id -> against the baseline
    flags: list[str]
    scorecard: list[ClaimCard]
    verdict: str
    prices: PriceSheet
    costs: dict[str, CostFigures] = field(default_factory=dict)  # run id -> cost per million requests
    # Capacity searches (bench --capacity): each run's figures, and each against the baseline.
    capacity: dict[str, CapacityFigures] = field(default_factory=dict)
    capacity_differences: dict[str, Difference | None] = field(default_factory=dict)
    capacity_named: bool = True  # whether the capacity verdict names a winner
    # Fault experiments: each run's figures per endpoint (run id ->), and whether the verdict names a result.
    faults: dict[str, FaultFigures] = field(default_factory=dict)
    faults_named: bool = True
    # Redeploy experiments: each run's rollout figures (run id ->).
    redeploys: dict[str, RedeployFigures] = field(default_factory=dict)
    # A scaling experiment (every run a capacity search at one replica count): capacity against budget.
    scaling: ScalingFigures | None = None
    report_dir: Path | None = None
    files: list[Path] = field(default_factory=list)

    @property
    def project(self) -> str:
        return self.runs[0].record.project

    @property
    def named_no_verdict(self) -> bool:
        """True when no winner is named: a run is invalid, or a side has one trial (its intervals
        leave out run-to-run drift)."""
        if self.scaling is not None:
            return any(not run.record.valid for run in self.runs) or not self.capacity_named
        if self.capacity:
            return any(not run.valid for run in self.runs) or not self.capacity_named
        if self.faults or self.redeploys:
            return any(not run.valid for run in self.runs) or not self.faults_named
        return any(not run.valid for run in self.runs) or any(d.one_trial for d in self.differences.values())

    def to_json(self, plots: list[str] | None = None) -> dict[str, Any]:
        return {
            "schema": COMPARISON_SCHEMA,
            "project": self.project,
            "baseline": self.baseline.id,
            "runs": [
                {
                    "id": run.id,
                    "path": str(run.path),
                    "architecture": run.record.architecture,
                    "runtime": run.record.runtime,
                    "valid": run.valid,
                    "reasons": run.record.reasons,
                    "load": run.point.load_description,
                }
                for run in self.runs
            ],
            "table": [row.to_json() for row in self.table],
            "differences": {run_id: d.to_json() for run_id, d in self.differences.items()},
            "replication": {run_id: d.replication.to_json() for run_id, d in self.differences.items()},
            "flags": self.flags,
            "scorecard": [vars(card) for card in self.scorecard],
            "verdict": self.verdict,
            "prices": {**vars(self.prices), "description": self.prices.describe()},
            "costs": {run_id: c.to_json() for run_id, c in self.costs.items()},
            "capacity": {run_id: c.to_json() for run_id, c in self.capacity.items()} or None,
            "capacity_differences": {
                run_id: None if d is None else d.to_json() for run_id, d in self.capacity_differences.items()
            }
            or None,
            "faults": {run_id: f.to_json() for run_id, f in self.faults.items()} or None,
            "redeploys": {run_id: r.to_json() for run_id, r in self.redeploys.items()} or None,
            "scaling": self.scaling.to_json() if self.scaling else None,
            "plots": plots or [],
        }


def compare(
    selectors: list[str],
    projects: list[Path] | None = None,
    latest: bool = False,
    baseline: str | None = None,
    output: Path | None = None,
    seed: int = 0,
    prices: Path | None = None,
) -> Comparison:
    """Side by side, differences against the baseline with 95% CIs, the claims scorecard, cost
    per million requests (PRICES: a price sheet; None: aiarch's default), and report.md,
    report.html and report.json written to OUTPUT (default: a new folder under the first run's
    project in .aiarch/reports/). Capacity searches are compared by capacity at the objective."""
    from aiarch.compare.report import write_reports

    sheet = load_prices(prices)
    projects = [p.expanduser().absolute() for p in (projects or [Path(".")])]
    runs = resolve_runs(selectors, projects, latest)
    searched = [run for run in runs if run.record.capacity is not None]
    faulted = [run for run in runs if run.record.fault is not None]
    redeployed = [run for run in runs if run.record.redeploy is not None]
    if any(group and len(group) != len(runs) for group in (searched, faulted, redeployed)):
        raise UserInputError(
            "capacity searches, fault and redeploy experiments and load runs cannot be compared with each other: "
            + ", ".join(f"{run.id} ({_kind(run.record)})" for run in runs),
            hint="compare runs of one kind together: capacity searches, fault experiments, redeploys, or load runs",
        )
    if baseline is None:
        chosen = next((run for run in runs if run.record.architecture == "monolith"), runs[0])
    else:
        matching = [run for run in runs if run.id.startswith(baseline) or str(run.path) == baseline]
        if len(matching) != 1:
            raise UserInputError(f"--baseline {baseline!r} names none of the compared runs ({', '.join(r.id for r in runs)})")
        chosen = matching[0]
    flags = differences_besides_architecture(runs)
    capacity: dict[str, CapacityFigures] = {}
    scaling_of: ScalingFigures | None = None
    if searched:
        capacity = {run.id: capacity_figures(run, sheet) for run in runs}  # before the steps are merged
        objectives = {figures.objective for figures in capacity.values()}
        if len(objectives) > 1:
            flags.append("different objectives: " + "; ".join(f"{run.label}: {capacity[run.id].objective}" for run in runs))
        if is_scaling(runs):  # each record's own step indexes, before the steps are merged
            scaling_of = scaling_figures(runs, capacity)
        pick_common_step(runs, flags)
    elif faulted or redeployed:
        for run in runs:  # each experiment run's trial, as trials of one point (in memory only)
            run.record.points = merge_steps(run.record)
            run.point_index = 0
        faults = {run.record.plan.fault.kind for run in runs if run.record.plan.fault}
        if len(faults) > 1:
            flags.append("different faults: " + "; ".join(f"{run.label}: {fault_figures(run.record).describe()}" for run in runs))
    else:
        pick_points(runs, flags)
    for run in runs:
        if not run.point.summary or not run.point.total.requests:
            raise UserInputError(
                f"run {run.id} measured no request at {run.point.load_description}", hint="pick another run from `aiarch runs`"
            )
    table = [figures(run) for run in runs]
    scaling = scaling_of is not None
    # A scaling experiment's runs are points of curves: not each against the baseline.
    differences = {} if scaling else {run.id: differences_against(chosen, run, seed) for run in runs if run is not chosen}
    cards = [] if scaling else scorecard(chosen, runs, table, differences)
    if capacity:
        costs = {run_id: figures.cost for run_id, figures in capacity.items() if figures.cost}
    elif faulted or redeployed:
        costs = {}  # what a run under a fault or a rollout served is not a throughput to plan with
    else:
        costs = {}
        for run, row in zip(runs, table, strict=True):
            kind = f"measured throughput ({run.point.load_description}; not a capacity)"
            costs[run.id] = cost_figures(run.record, run.point.trials[-1], row.total.throughput_rps, kind, sheet)
    comparison = Comparison(
        runs,
        chosen,
        table,
        differences,
        flags,
        cards,
        "" if scaling else verdict(chosen, runs, differences, flags),
        sheet,
        costs,
        capacity,
    )
    comparison.faults = {run.id: fault_figures(run.record) for run in faulted}
    comparison.redeploys = {run.id: redeploy_figures(run.record) for run in redeployed}
    if len({figures.replicas for figures in comparison.redeploys.values()}) > 1:
        comparison.flags.append(
            "the redeployed services ran different replica counts ("
            + ", ".join(
                f"{run.label}: {comparison.redeploys[run.id].service} x{comparison.redeploys[run.id].replicas}" for run in runs
            )
            + "): one replica has no balancer to roll out behind, so its requests fail while it restarts"
        )
    if scaling_of is not None:
        comparison.scaling = scaling_of
        experiments = {run.record.plan.scale.experiment for run in runs if run.record.plan.scale}
        if len(experiments) > 1:
            comparison.flags.append(f"runs of {len(experiments)} scaling experiments: their points are drawn as one curve")
    _headline(comparison)
    if output is None:
        project_dir = Path(runs[0].record.deployment.project_dir)
        root = project_dir if project_dir.is_dir() else runs[0].path.parent
        output = root / ".aiarch" / "reports" / new_id(0).removesuffix("-")
    comparison.report_dir = output
    try:
        comparison.files = write_reports(comparison, output)
    except OSError as error:
        raise UserInputError(
            f"cannot write the reports to {output}: {error.strerror or error}", hint="choose another --output"
        ) from None
    return comparison


def _kind(record: RunRecord) -> str:
    if record.fault is not None:
        return "fault"
    if record.redeploy is not None:
        return "redeploy"
    return "capacity" if record.capacity is not None else "load"


def _headline(comparison: Comparison) -> None:
    """Capacity (when the runs are searches) and cost lead the scorecard; with capacity, the
    verdict is capacity at the objective (for a scaling experiment: at the same budget)."""
    if comparison.scaling is not None:
        _scaling_headline(comparison, comparison.scaling)
        return
    base, runs = comparison.baseline, comparison.runs
    reason_blocked = blocked(runs)
    cards: list[ClaimCard] = []
    sentences: list[str] = []
    named = True
    for run in runs:
        if run is base:
            continue
        who = f"{run.record.architecture} vs {base.record.architecture}"
        if comparison.capacity:
            base_figures, figures_ = comparison.capacity[base.id], comparison.capacity[run.id]
            difference = capacity_difference(base_figures, figures_)
            comparison.capacity_differences[run.id] = difference
            sentence, names = capacity_verdict(base_figures, figures_, difference)
            named = named and names
            sentences.append(sentence)
            figure = f"{base_figures.describe()} vs {figures_.describe()}"
            cards.append(
                ClaimCard(
                    "Capacity at the objective (the throughput an operator plans with)",
                    who,
                    figure,
                    reason_blocked or sentence.removeprefix(f"{who}: "),
                    "no verdict" if reason_blocked or not names else "verdict",
                )
            )
            cards.append(
                ClaimCard(
                    "Efficiency per core and per GB of the budget",
                    who,
                    f"reserved {base_figures.reserved.describe()} vs {figures_.reserved.describe()}",
                    reason_blocked or per_budget_line(base_figures, figures_),
                    "no verdict" if reason_blocked else "verdict",
                )
            )
        if base.id in comparison.costs and run.id in comparison.costs:
            base_cost, run_cost = comparison.costs[base.id], comparison.costs[run.id]
            cards.append(
                ClaimCard(
                    "Cost per million requests",
                    who,
                    f"prices: {comparison.prices.describe()}; reserved {base_cost.reserved_budget.describe()} vs "
                    f"{run_cost.reserved_budget.describe()}",
                    reason_blocked or cost_line(base_cost, run_cost, comparison.prices.currency),
                    "no verdict" if reason_blocked else "verdict",
                )
            )
        if comparison.faults:
            figure, sentence, names = fault_verdict(
                base.record.architecture, comparison.faults[base.id], run.record.architecture, comparison.faults[run.id]
            )
            named = named and names
            sentences.append(f"{who}: {sentence}")
            cards.append(
                ClaimCard(
                    "Fault isolation: a model crash leaves the catalog up",
                    f"{who} ({comparison.faults[run.id].describe()})",
                    figure,
                    reason_blocked or sentence,
                    "no verdict" if reason_blocked or not names else "verdict",
                )
            )
        if comparison.redeploys:
            figure, sentence, names = redeploy_verdict(
                base.record.architecture, comparison.redeploys[base.id], run.record.architecture, comparison.redeploys[run.id]
            )
            named = named and names
            sentences.append(f"{who}: {sentence}")
            cards.append(
                ClaimCard(
                    REDEPLOY_CLAIM,
                    who,
                    figure,
                    reason_blocked or sentence,
                    "no verdict" if reason_blocked or not names else "verdict",
                )
            )
    kept = comparison.scorecard
    if comparison.redeploys:
        # Latency, throughput and efficiency during a rollout are not the steady-state claims.
        kept = [
            ClaimCard(card.claim, "-", "-", "not measured in a redeploy experiment: compare load runs", "not measured")
            if card.kind != "not measured" else card
            for card in kept
            if not card.claim.startswith(REDEPLOY_CLAIM)
        ]  # fmt: skip
        comparison.faults_named = named
        text = reason_blocked or "; ".join(sentences)
        if comparison.flags and not reason_blocked:
            text += f" (caution: {len(comparison.flags)} difference(s) between the runs besides the architecture)"
        comparison.verdict = text
    if comparison.faults:
        # Latency, throughput and efficiency under a fault are not the steady-state claims.
        kept = [
            ClaimCard(card.claim, "-", "-", "not measured in a fault experiment: compare load runs", "not measured")
            if card.kind != "not measured" else card
            for card in kept
            if not card.claim.startswith("Fault isolation")
        ]  # fmt: skip
        comparison.faults_named = named
        text = reason_blocked or "; ".join(sentences)
        if comparison.flags and not reason_blocked:
            text += f" (caution: {len(comparison.flags)} difference(s) between the runs besides the architecture)"
        comparison.verdict = text
    if comparison.capacity:
        # The closed-loop efficiency card divides throughput at one load; capacity replaces it.
        kept = [card for card in kept if not card.claim.startswith("Efficiency")]
    comparison.scorecard = [*cards, *kept]
    if comparison.capacity:
        comparison.capacity_named = named
        text = reason_blocked or "; ".join(sentences)
        if comparison.flags and not reason_blocked:
            text += f" (caution: {len(comparison.flags)} difference(s) between the runs besides the architecture)"
        comparison.verdict = text


SCALING_CLAIM = "Independent scaling of the model service"


def _scaling_headline(comparison: Comparison, figures: ScalingFigures) -> None:
    """A scaling experiment's runs are points of each architecture's curve, not rivals one by one:
    the scaling card compares the architectures at the same budget; the memory card, what each
    replica of the scaled service holds."""
    # The searches' records decide (a step that failed is how a search finds its capacity; the
    # step latency is compared at is not the figure here).
    invalid = [run for run in comparison.runs if not run.record.valid]
    reason_blocked = (
        "no verdict: " + "; ".join(f"{run.label} is invalid ({'; '.join(run.record.reasons)})" for run in invalid)
        if invalid
        else None
    )
    base_arch = comparison.baseline.record.architecture
    others = list(dict.fromkeys(run.record.architecture for run in comparison.runs if run.record.architecture != base_arch))
    cards: list[ClaimCard] = []
    sentences: list[str] = []
    named = True
    for arch in others:
        who = f"{arch} vs {base_arch}"
        figure, sentence, names = scaling_card(figures, base_arch, arch, comparison.capacity)
        named = named and names
        sentences.append(f"{who}: {sentence}")
        cards.append(
            ClaimCard(
                SCALING_CLAIM, who, figure, reason_blocked or sentence, "no verdict" if reason_blocked or not names else "verdict"
            )
        )
        memory = [
            f"{p.architecture}: each {p.service} replica {p.replica_memory_mib:,.0f} MiB"
            for p in (figures.of(base_arch)[-1:] + figures.of(arch)[-1:])
            if p.replica_memory_mib
        ]
        if memory:
            cards.append(
                ClaimCard(
                    "Scaling the model scales only what holds it",
                    who,
                    "memory per replica of the scaled service: " + "; ".join(memory),
                    "each added replica costs this much memory",
                    "verdict",
                )
            )
    cards.append(
        ClaimCard("GPU placement: the model alone on the expensive hardware", "-", "-", figures.gpu_note, "not measured")
    )
    cards += [
        ClaimCard(claim, "-", "-", f"not measured in a scaling experiment: {command}", "not measured")
        for claim, command in NOT_MEASURED_YET
        if claim != SCALING_CLAIM
    ]
    comparison.scorecard = cards
    comparison.capacity_named = named
    text = reason_blocked or "; ".join(sentences) or "one architecture only: nothing to compare at the same budget"
    if comparison.flags and not reason_blocked:
        text += f" (caution: {len(comparison.flags)} difference(s) between the runs besides the architecture)"
    comparison.verdict = text
