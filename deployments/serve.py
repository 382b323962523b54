"""Serve the ingestion deployments from this process (no work pool needed).

    python -m deployments.serve --repository ./weather.icechunk

Runs ``ingest`` on demand and ``append`` on a cron schedule until interrupted.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from prefect import serve

from flows.ingest import append, ingest

__all__ = ["build_deployments", "main"]


def build_deployments(
    repository: str, source: dict[str, Any], cron: str = "5 */6 * * *"
) -> list[Any]:
    """The on-demand ingest deployment and the scheduled append deployment."""
    params = {"source": source, "repository": repository}
    return [
        ingest.to_deployment(name="ingest-on-demand", parameters=params),
        append.to_deployment(
            name="append-every-6h", parameters=params, cron=cron, concurrency_limit=1
        ),
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repository", required=True)
    parser.add_argument("--cron", default="5 */6 * * *")
    parser.add_argument("--ntime", type=int, default=48)
    args = parser.parse_args(argv)
    # Without PREFECT_API_URL, serve() runs a temporary local API server; its telemetry
    # heartbeat races the SQLite migrations and logs "database is locked" tracebacks.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    source = {"kind": "synthetic", "ntime": args.ntime}
    serve(*build_deployments(args.repository, source, args.cron))


if __name__ == "__main__":
    main()
