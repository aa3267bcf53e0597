"""The storage backends by name: ``storage.backend`` -> the module that opens it.

Kept apart from the factory so that the configuration's rules can name the backends without
importing any storage code.
"""

from __future__ import annotations

__all__ = ["BACKENDS", "register_backend"]

BACKENDS: dict[str, str] = {
    "local": "retrieval.storage.local.backend",
    "postgres": "retrieval.storage.pg.backend",
}


def register_backend(name: str, module: str) -> None:
    """Make ``storage.backend = name`` open the backend of ``module`` (a plug-in, or a test's own)."""
    BACKENDS[name] = module
