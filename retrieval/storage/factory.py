"""The one place that reads ``storage.backend``: it opens the backend the configuration names.

A backend is a module with ``open_backend(config, *, create) -> Backend`` (and, when its schema
is upgraded by hand, ``upgrade_schema(config)``); adding one is a package under
``retrieval/storage/`` and a line in ``BACKENDS`` (``retrieval/storage/registry.py``). Backend
modules are imported only when chosen, so the PostgreSQL driver loads only for that backend.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType

from retrieval.config import Config
from retrieval.errors import ConfigError, StoreError
from retrieval.storage.base import Backend, TransferReport
from retrieval.storage.registry import BACKENDS, register_backend
from retrieval.wording import plural

__all__ = ["BACKENDS", "migrate", "open_backend", "register_backend", "upgrade_schema"]


def _module(config: Config) -> ModuleType:
    name = config.storage.backend
    if name not in BACKENDS:
        known = ", ".join(f'"{n}"' for n in BACKENDS)
        raise ConfigError(f"storage.backend must be one of {known}, not {name!r}")
    return importlib.import_module(BACKENDS[name])


def open_backend(config: Config, *, create: bool = False) -> Backend:
    """Open the configured backend; with ``create`` make an empty store when there is none."""
    backend: Backend = _module(config).open_backend(config, create=create)
    return backend


def upgrade_schema(config: Config) -> tuple[list[str], int]:
    """Apply the schema migrations the configured store lacks; return them and its version now."""
    module = _module(config)
    if not hasattr(module, "upgrade_schema"):
        raise ConfigError(
            f'`newsqa db` works on the postgres backend, not "{config.storage.backend}":'
            ' set [storage] backend = "postgres"'
        )
    applied: tuple[list[str], int] = module.upgrade_schema(config)
    return applied


def migrate(config: Config, source: str, target: str) -> TransferReport:
    """Copy the store of backend ``source`` into the empty one of backend ``target``: ``dst.load(src.dump())``.

    Articles, passages, vectors, the questions log and feedback are copied as stored; nothing
    is embedded again, and the target gets the source's encoder.
    """
    if source == target:
        raise ConfigError("migrate copies between two backends: --from and --to must differ")

    def on(name: str) -> Config:
        return dataclasses.replace(config, storage=dataclasses.replace(config.storage, backend=name))

    src = open_backend(on(source))
    try:
        dump = src.dump()  # refuses a source without articles
        dst = open_backend(on(target), create=True)
        try:
            if dst.counts() != (0, 0):
                articles, passages = dst.counts()
                raise StoreError(
                    f"the target already holds {plural(articles, 'article')} and {plural(passages, 'passage')}; "
                    "migrate into an empty one"
                )
            return dst.load(dump)
        finally:
            dst.close()
    finally:
        src.close()
