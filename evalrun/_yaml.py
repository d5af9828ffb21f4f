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
    """A text file's content, with one-line errors for missing, unreadable or binary files.
    Only regular files are read: a FIFO or a device (``/dev/zero``) would block or never end."""
    import stat

    if "\0" in str(path):  # no file name holds one; the OS would refuse it
        raise UsageError(f"{what} path holds a NUL character", str(path).replace("\0", "\\0"))
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise UsageError(f"{what} not found", str(path)) from None
    except OSError as e:
        raise UsageError(f"cannot read {what}: {e.strerror}", str(path)) from None
    if stat.S_ISDIR(mode):
        raise UsageError(f"{what} is a directory, not a file", str(path))
    if not stat.S_ISREG(mode):
        raise UsageError(f"{what} is not a regular file (a pipe or a device?)", str(path))
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{what} not found", str(path)) from None
    except IsADirectoryError:
        raise UsageError(f"{what} is a directory, not a file", str(path)) from None
    except OSError as e:
        raise UsageError(f"cannot read {what}: {e.strerror}", str(path)) from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw.count(b"\n", 0, nul) + 1
        col = nul - raw.rfind(b"\n", 0, nul)
        raise UsageError(f"{what} is binary, not text: a NUL byte", str(path), line, col)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UsageError("not valid UTF-8 text", str(path), line) from None


# A document may share values through anchors and aliases, but what it expands to is
# bounded: a few hundred bytes of nested aliases ("billion laughs") would otherwise expand
# into billions of values in whatever walks the data next.
MAX_EXPANDED_NODES = 2_000_000


def _check_expansion(root: yaml.Node, file: str) -> None:
    """Refuse a node graph that expands past MAX_EXPANDED_NODES (counted on the graph, in
    time linear in its distinct nodes), naming the line of the node that crosses the bound;
    also refuse duplicate keys, which YAML forbids and which would silently drop a value."""
    sizes: dict[int, int] = {}
    active: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        kids: list[yaml.Node] = []
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                kids += [k, v]
        elif isinstance(node, yaml.SequenceNode):
            kids = list(node.value)
        if not children_done:
            if key in active:
                raise UsageError("YAML alias refers to itself (a recursive structure)", file,
                                 node.start_mark.line + 1, node.start_mark.column + 1)
            active.add(key)
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in sizes)
            continue
        active.discard(key)
        total = 1 + sum(sizes[id(k)] for k in kids)
        if total > MAX_EXPANDED_NODES:
            raise UsageError(f"YAML aliases expand to more than {MAX_EXPANDED_NODES:,} values (an alias bomb?)",
                             file, node.start_mark.line + 1, node.start_mark.column + 1)
        sizes[key] = total
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for k, _ in node.value:
                if isinstance(k, yaml.ScalarNode) and k.tag != "tag:yaml.org,2002:merge":
                    if k.value in seen:
                        raise UsageError(f"duplicate key '{k.value}' (first on line {seen[k.value]})", file,
                                         k.start_mark.line + 1, k.start_mark.column + 1)
                    seen[k.value] = k.start_mark.line + 1


# libyaml composes nested collections by C recursion: tens of thousands of levels overflow
# the C stack (a segfault, not an exception). The parser's events are read first, flat.
MAX_NESTING = 100  # as deep as a dataset value may nest (datasets.MAX_DEPTH)


def _check_nesting(text: str, file: str) -> None:
    if len(text) < 2 * MAX_NESTING:  # too short to nest that deep
        return
    too_deep = f"YAML nests more than {MAX_NESTING:,} levels deep"
    depth = 0
    try:
        for ev in yaml.parse(text, Loader=_Loader):
            if isinstance(ev, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_NESTING:
                    mark = ev.start_mark  # always set by the parser; None only in the stubs' type
                    raise UsageError(too_deep, file, mark.line + 1 if mark else None,
                                     mark.column + 1 if mark else None)
            elif isinstance(ev, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as e:
        # PyYAML >= 6.0.4 has a nesting bound of its own in the scanner, which reads ahead of
        # the events: the same refusal, said the same way
        if "maximum nesting depth" not in str(e.problem):
            raise
        mark = e.problem_mark
        raise UsageError(too_deep, file, mark.line + 1 if mark else None,
                         mark.column + 1 if mark else None) from None


def load_located(text: str, file: str) -> Located:
    loader = _Loader(text)
    try:
        _check_nesting(text, file)
        node = loader.get_single_node()
        if node is not None:
            _check_expansion(node, file)
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
    except RecursionError:
        raise UsageError("YAML nests too deeply", file) from None
    except ValueError as e:  # an integer of thousands of digits (Python's int() limit)
        raise _unreadable_scalar(node, file, e) from None
    finally:
        loader.dispose()
    marks: dict[Path_, tuple[int, int]] = {}
    if node is not None:
        _walk(node, (), marks)
    return Located(data, marks, file)


def _unreadable_scalar(root: yaml.Node, file: str, e: ValueError) -> UsageError:
    """A one-line error at the longest scalar (what made the constructor fail)."""
    longest: yaml.Node | None = None
    stack = [root]
    seen: set[int] = set()
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        if isinstance(n, yaml.ScalarNode):
            if longest is None or len(n.value) > len(longest.value):
                longest = n
        elif isinstance(n, yaml.MappingNode):
            stack.extend(x for kv in n.value for x in kv)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
    if longest is None:
        return UsageError(f"YAML value cannot be read: {e}", file)
    return UsageError(f"YAML value cannot be read ({len(longest.value):,} characters): {str(e).split(';')[0]}",
                      file, longest.start_mark.line + 1, longest.start_mark.column + 1)


def _walk(node: yaml.Node, path: Path_, marks: dict[Path_, tuple[int, int]], depth: int = 0) -> None:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if depth > 200:  # positions this deep are never needed for a message
        return
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            # a key's own position is where messages about that key point
            _walk(v, path + (key,), marks, depth + 1)
            marks[path + (key,)] = (k.start_mark.line + 1, k.start_mark.column + 1)
            marks[path + (key, "__value__")] = (v.start_mark.line + 1, v.start_mark.column + 1)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            _walk(v, path + (i,), marks, depth + 1)
