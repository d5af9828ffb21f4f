"""Importing the user's own modules (``python:`` targets, ``type: python`` scorers) from the
eval file's folder.

A process may run several evals (the library, the test suite): each finds its modules in its
own folder, put first on ``sys.path`` by absolute path (a relative one would share one cached
directory listing between working directories). A module of the same name that an earlier
eval imported from another folder, or whose file changed since, is imported afresh, so an
eval always runs the code its own folder holds now, as a new process would.
"""

from __future__ import annotations

import importlib
import os
import sys
from importlib.machinery import PathFinder
from pathlib import Path
from types import ModuleType

#: top-level module name -> (file, mtime_ns, size) when this module imported it
_stamps: dict[str, tuple[str, int, int]] = {}


def _stamp(file: str) -> tuple[str, int, int]:
    st = os.stat(file)
    return file, st.st_mtime_ns, st.st_size


def import_user_module(module_name: str, base_dir: Path) -> ModuleType:
    """``module_name`` as found from ``base_dir`` first; raises what ``import_module`` raises."""
    base = os.path.abspath(base_dir)
    if base in sys.path:
        sys.path.remove(base)
    sys.path.insert(0, base)
    top = module_name.partition(".")[0]
    spec = PathFinder.find_spec(top, [base])
    origin = spec.origin if spec is not None and spec.has_location else None
    loaded = sys.modules.get(top)
    if loaded is not None and origin is not None:
        stale = getattr(loaded, "__file__", None) != origin or _stamps.get(top, _stamp(origin)) != _stamp(origin)
        if stale:
            for name in [n for n in sys.modules if n == top or n.startswith(top + ".")]:
                del sys.modules[name]
            importlib.invalidate_caches()
    module = importlib.import_module(module_name)
    if origin is not None:
        _stamps[top] = _stamp(origin)
    return module
