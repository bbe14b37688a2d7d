"""How long `aiarch --help` takes next to a bare `python -c pass`, measured side by side.

    python bench/cli_startup.py [--rounds 20]

Prints the median of interleaved rounds for both and their difference; the target is that
aiarch's own start-up (the difference) stays under 0.5 s and that no heavy library is imported.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time


def timed(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    rounds = parser.parse_args().rounds
    bare = [sys.executable, "-c", "pass"]
    aiarch = [sys.executable, "-m", "aiarch", "--help"]
    samples: dict[str, list[float]] = {"python": [], "aiarch": []}
    for _ in range(rounds):  # interleaved, so machine noise hits both alike
        samples["python"].append(timed(bare))
        samples["aiarch"].append(timed(aiarch))
    python_s, aiarch_s = (statistics.median(samples[k]) for k in ("python", "aiarch"))
    heavy = (
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sys\nfrom aiarch.cli import app\ntry:\n app(['--help'])\nexcept SystemExit: pass\n"
                "print('HEAVY=' + ','.join(m for m in ('torch','docker','locust','jinja2','pydantic') if m in sys.modules))",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.rsplit("HEAVY=", 1)[-1]
        .strip()
    )
    print(f"rounds: {rounds} (interleaved)")
    print(f"python -c pass     median {python_s * 1000:7.1f} ms")
    print(f"aiarch --help      median {aiarch_s * 1000:7.1f} ms")
    print(f"aiarch's own cost         {(aiarch_s - python_s) * 1000:7.1f} ms   (target < 500 ms)")
    print(f"ratio aiarch / python     {aiarch_s / python_s:7.2f}x")
    print(f"heavy modules imported:   {heavy or 'none'}")


if __name__ == "__main__":
    main()
