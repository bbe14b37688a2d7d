"""Deploying a project: one small interface, several runtimes (Docker, local processes; later a
cluster). Bench and compare only see `Deployment`, never which runtime made it.

    deployment = up(Path("shop"), replicas={"inference": 2}).deployment   # Docker, else local
    status(Path("shop")); down(Path("shop"))

`deploy` holds these operations, `base` the interface and types every runtime shares, `docker`
and `local` the runtimes.
"""

from __future__ import annotations

from aiarch.runtime.base import (
    Deployment,
    DownReport,
    ImageInfo,
    NotReady,
    Probe,
    Project,
    Replica,
    ReplicaStatus,
    ReplicaUsage,
    Reporter,
    Runtime,
    SilentReporter,
    UpOptions,
    UsageProbe,
    http_probe,
    load_deployment,
)
from aiarch.runtime.deploy import (
    RUNTIMES,
    StatusReport,
    UpResult,
    down,
    logs,
    parse_replica_flags,
    redeploy,
    runtime_for,
    select_runtime,
    status,
    up,
)

__all__ = [
    "RUNTIMES",
    "Deployment",
    "DownReport",
    "ImageInfo",
    "NotReady",
    "Probe",
    "Project",
    "Replica",
    "ReplicaStatus",
    "ReplicaUsage",
    "Reporter",
    "Runtime",
    "SilentReporter",
    "StatusReport",
    "UpOptions",
    "UpResult",
    "UsageProbe",
    "down",
    "http_probe",
    "load_deployment",
    "logs",
    "parse_replica_flags",
    "redeploy",
    "runtime_for",
    "select_runtime",
    "status",
    "up",
]
