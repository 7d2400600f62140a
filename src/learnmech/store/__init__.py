"""The results store: runs, curves, verdicts and artifact paths in one DuckDB file.

Contract
--------
* ``Store.open(path)`` opens or creates a store; anything at ``path`` that is not a learnmech
  store is refused (``NotAStoreError``) and left unchanged; a store used by another process
  gives ``StoreBusyError``. Both are ``StoreError``s with a one-line ``--store: ...`` message.
* One Store holds the only writer connection for its lifetime, so a run found ``running`` was
  left by a killed process and is redone by callers.
* ``run_id(claim_id, config, version)`` is the stable 16-hex id of a run; ``canonical_json`` is
  the config text it hashes.

This package imports only numpy, pyarrow, duckdb, the standard library and
``learnmech.__version__``.
"""

from learnmech.store.ids import canonical_json, run_id
from learnmech.store.schema import SCHEMA_VERSION
from learnmech.store.files import FolderInUse
from learnmech.store.store import (
    DEFAULT_STORE_PATH,
    NotAStoreError,
    RunRecord,
    Store,
    StoreBusyError,
    StoreError,
    UnknownRunError,
)

__all__ = [
    "DEFAULT_STORE_PATH",
    "FolderInUse",
    "SCHEMA_VERSION",
    "NotAStoreError",
    "RunRecord",
    "Store",
    "StoreBusyError",
    "StoreError",
    "UnknownRunError",
    "canonical_json",
    "run_id",
]
