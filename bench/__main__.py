"""`python -m bench` (the benchmark), `python -m bench soak` (the soak run), and
`python -m bench capacity` (docs/capacity.md and .json again from the last run's unit costs
in docs/capacity.json and the manifests as they are now: after a change to k8s/ or
terraform/, no new benchmark needed)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--docs", type=Path, default=DOCS, help="where the reports go")
    commands = parser.add_subparsers(dest="command")
    soak = commands.add_parser("soak", help="a bounded load run against the distributed mode")
    soak.add_argument("--seconds", type=float, default=60.0, help="how long the load lasts")
    soak.add_argument("--clients", type=int, default=300, help="simulated browsers at once")
    commands.add_parser("capacity", help="redo the capacity model from docs/capacity.json")
    args = parser.parse_args(argv)
    if args.command == "capacity":
        from bench import capacity

        recorded = capacity.from_json((args.docs / "capacity.json").read_text(encoding="utf-8"))
        for path in capacity.write(recorded.inputs, args.docs):
            print(f"wrote {path}")
        return 0
    if args.command == "soak":
        from bench.soak import run_soak

        return asyncio.run(run_soak(args.docs, seconds=args.seconds, clients=args.clients))
    from bench.benchmark import run_benchmark

    return asyncio.run(run_benchmark(args.docs))


if __name__ == "__main__":
    sys.exit(main())
