"""Prefect deployments of the ingestion flows (see ``prefect.yaml`` and ``serve.py``)."""
