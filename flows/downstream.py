"""A downstream flow triggered by new data: a quick-look of the snapshot an ``icechunk.commit``
event names (deployed with a ``DeploymentEventTrigger`` in ``deployments/prefect.yaml``).

It opens the repository *at the event's snapshot* (not the branch tip, which may have moved
on), reads the appended range, and publishes per-variable statistics as a markdown artifact.
Re-running it for the same snapshot gives the same result: it only reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from prefect import flow
from prefect.artifacts import create_markdown_artifact
from prefect.logging import get_run_logger

from tasks import IcechunkRepositoryBlock, open_repository

__all__ = ["on_commit", "quicklook"]


def quicklook(ds: xr.Dataset) -> dict[str, dict[str, float]]:
    """Minimum, mean and maximum of every numeric data variable (NaNs ignored)."""
    stats: dict[str, dict[str, float]] = {}
    for name, var in ds.data_vars.items():
        if var.dtype.kind in "fiu" and var.size:
            values = np.asarray(var.values, dtype="float64")
            stats[str(name)] = {
                "min": float(np.nanmin(values)),
                "mean": float(np.nanmean(values)),
                "max": float(np.nanmax(values)),
            }
    return stats


@flow(name="icechunk-quicklook", persist_result=False, log_prints=False)
def on_commit(
    repository: str | IcechunkRepositoryBlock,
    snapshot_id: str,
    branch: str = "main",
    dim: str | None = None,
    start: int | str | None = None,
    stop: int | str | None = None,
) -> dict[str, Any]:
    """Quick-look statistics of what the commit ``snapshot_id`` appended.

    ``dim``, ``start`` and ``stop`` (positions along ``dim``) come from the event payload
    (``appended``); event templates render them as strings, and an empty one means unknown:
    the whole dataset at the snapshot is summarised then.
    """
    logger = get_run_logger()
    repo = open_repository(repository, create=False)
    session = repo.readonly_session(snapshot_id=snapshot_id)
    ds = xr.open_zarr(session.store, consolidated=False, chunks=None)
    if dim and dim in ds.dims and str(start or "").isdigit() and str(stop or "").isdigit():
        ds = ds.isel({dim: slice(int(str(start)), int(str(stop)))})
    stats = quicklook(ds)
    logger.info("quick-look of snapshot %s on %s: %d variables", snapshot_id, branch, len(stats))
    rows = "\n".join(
        f"| {name} | {s['min']:.4g} | {s['mean']:.4g} | {s['max']:.4g} |"
        for name, s in sorted(stats.items())
    )
    create_markdown_artifact(
        key="icechunk-quicklook",
        markdown=(
            f"### Quick-look of snapshot `{snapshot_id}` ({branch})\n\n"
            "| variable | min | mean | max |\n|---|---|---|---|\n" + rows + "\n"
        ),
        description=f"Statistics of the data committed in {snapshot_id}",
    )
    return {"snapshot_id": snapshot_id, "branch": branch, "stats": stats}


if __name__ not in ("flows.downstream", "__main__"):
    # loaded from a file-path entrypoint: use the package's flow (see flows/ingest.py)
    from flows.downstream import on_commit, quicklook
