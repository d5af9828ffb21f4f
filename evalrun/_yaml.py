"""YAML loading that remembers where every value came from, for file:line messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from evalrun.errors import UsageError

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

Path_ = tuple[Any, ...]


class Located:
    """Parsed YAML plus a map from a value's path (keys and list indexes) to its line/column."""

    def __init__(self, data: Any, marks: dict[Path_, tuple[int, int]], file: str) -> None:
        self.data = data
        self.marks = marks
        self.file = file

    def where(self, path: Path_) -> tuple[int | None, int | None]:
        """Line and column (1-based) of the deepest known prefix of ``path``."""
        path = tuple(path)
        while True:
            if path in self.marks:
                return self.marks[path]
            if not path:
                return (None, None)
            path = path[:-1]

    def error(self, message: str, path: Path_ = ()) -> UsageError:
        line, col = self.where(path)
        return UsageError(message, self.file, line, col)


def read_text(path: Path, what: str = "file") -> str:
    """A text file's content, with one-line errors for missing, unreadable or binary files."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{what} not found", str(path)) from None
    except IsADirectoryError:
        raise UsageError(f"{what} is a directory, not a file", str(path)) from None
    except OSError as e:
        raise UsageError(f"cannot read {what}: {e.strerror}", str(path)) from None
    if b"\x00" in raw[:8192]:
        raise UsageError(f"{what} is binary, not text", str(path))
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UsageError("not valid UTF-8 text", str(path), line) from None


def load_located(text: str, file: str) -> Located:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        problem = e.problem or "invalid YAML"
        if e.context and e.problem:
            problem = f"{e.problem} ({e.context})"
        raise UsageError(f"YAML syntax error: {problem}", file,
                         mark.line + 1 if mark else None, mark.column + 1 if mark else None) from None
    except yaml.YAMLError as e:
        raise UsageError(f"YAML error: {e}", file) from None
    finally:
        loader.dispose()
    marks: dict[Path_, tuple[int, int]] = {}
    if node is not None:
        _walk(node, (), marks)
    return Located(data, marks, file)


def _walk(node: yaml.Node, path: Path_, marks: dict[Path_, tuple[int, int]]) -> None:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            # a key's own position is where messages about that key point
            _walk(v, path + (key,), marks)
            marks[path + (key,)] = (k.start_mark.line + 1, k.start_mark.column + 1)
            marks[path + (key, "__value__")] = (v.start_mark.line + 1, v.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _walk(v, path + (i,), marks)
