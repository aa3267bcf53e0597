"""Configuration: a TOML file read into frozen dataclasses, single keys overridden from the environment.

Where the file comes from: ``--config PATH``, else ``$NEWSQA_CONFIG``, else ``./config.toml`` when
it exists, else the defaults. Every key of section ``[s]`` can be overridden with
``NEWSQA_S_KEY`` (``NEWSQA_DATA_DIR`` for the top-level ``data_dir``). Unknown keys are errors that
name the key, values that cannot work are errors that name the key and what it may be
(``rules.py``), and ``NEWSQA_*`` variables that name no key are warned about. Secrets are never
read from the TOML itself.

The core's sections are ``sections.py``; a front-end's (``[telegram]``, ``[serve]``, ``[log]``) are
read and checked by the front-end (``bot/config.py``) from the same file, with ``parse.py``'s
helpers and ``rules.py``'s rules.
"""

from retrieval.config.load import config_from, load_config
from retrieval.config.parse import Secret
from retrieval.config.sections import (
    DEFAULT_MODEL,
    SECTIONS,
    Config,
    FeedConfig,
    IndexConfig,
    ModelConfig,
    PassageConfig,
    SearchConfig,
    StorageConfig,
    WebConfig,
)

__all__ = [
    "DEFAULT_MODEL",
    "SECTIONS",
    "Config",
    "FeedConfig",
    "IndexConfig",
    "ModelConfig",
    "PassageConfig",
    "SearchConfig",
    "Secret",
    "StorageConfig",
    "WebConfig",
    "config_from",
    "load_config",
]
