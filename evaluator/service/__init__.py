"""The HTTP service (`necessity serve`); needs the `service` extra (`pip install .[service]`)."""

from __future__ import annotations

from evaluator.service.app import Settings, create_app

__all__ = ["Settings", "create_app"]
