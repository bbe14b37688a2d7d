"""The load scenario runs against the real app, with every journey answered."""

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def test_locustfile_runs_every_journey_without_failures(shop_url):
    # Locust monkey-patches the process it runs in: always run it in its own.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            "locustfile.py",
            "--headless",
            "--users",
            "4",
            "--spawn-rate",
            "4",
            "--run-time",
            "4s",
            "--host",
            shop_url,
            "--json",
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        cwd=PROJECT,
        env={**os.environ, "MODEL_SIZE": "tiny"},
        check=False,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    stats = {entry["name"]: entry for entry in json.loads(result.stdout)}
    for name in ("/products/{id}", "/products?category", "/recommend"):
        assert stats[name]["num_requests"] > 0, name
        assert stats[name]["num_failures"] == 0, name
