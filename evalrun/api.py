"""The library entry points: :func:`run` an eval and :func:`compare` a saved run with a baseline.

``evalrun run`` and ``evalrun compare`` are these functions plus rendering: the command line
parses options, calls them, prints what they return and exits with ``result.exit_code``.
Nothing here prints; bad input raises :class:`~evalrun.errors.UsageError` before any call is
made, as on the command line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from os import PathLike, fspath
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalrun.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from evalrun.config import LoadedConfig
    from evalrun.datasets import Dataset
    from evalrun.engine import RunOptions
    from evalrun.records import Item, Record
    from evalrun.runs import Manifest, RunStatus, Summary
    from evalrun.store import RunDir
    from evalrun.targets import Target
    from evalrun.verdict import Verdict


@dataclass
class RunResult:
    """A finished (or interrupted, or failed) run: where it is saved, its summary, and the
    verdict when it had gates, a baseline or reports to judge it by."""

    run_dir: RunDir
    summary: Summary
    status: RunStatus
    verdict: Verdict | None = None
    #: the items the run covered, as read from the dataset (each with its ``source`` file:line)
    items: list[Item] | None = field(default=None, repr=False)  # (a repr of every item helps no one)

    @property
    def run_id(self) -> str:
        return self.run_dir.id

    @property
    def passed(self) -> bool:
        """Finished, and no gate failed."""
        return self.exit_code == ExitCode.OK

    @property
    def exit_code(self) -> ExitCode:
        if self.verdict is not None and self.status == "finished":
            return self.verdict.exit_code
        return ExitCode.of_run(self.status)

    def records(self) -> list[Record]:
        return self.run_dir.records()

    def manifest(self) -> Manifest:
        return self.run_dir.read_manifest()


def run(config: str | Path | LoadedConfig | None = None, *, concurrency: int | None = None,
        repeat: int | None = None, limit: int | None = None, filters: list[str] | None = None,
        sample: int | None = None, seed: int | None = None, shard: str | None = None,
        home: str | Path | None = None, resume: str | PathLike[str] | None = None,
        overrides: dict[str, Any] | None = None, baseline: str | PathLike[str] | None = None, reports: list[str] | None = None, slices: list[str] | None = None,
        push: bool = False, progress: str = "off") -> RunResult:
    """Run an eval file (a path, or a :class:`~evalrun.config.LoadedConfig`; None: ``evalrun.yaml``
    found from the working directory) and judge it: compared with ``baseline`` (or the accepted
    one), gates checked, ``reports`` (``FORMAT[:PATH]``) written. Options mean what the
    ``evalrun run`` options of the same names mean (``overrides`` apply to an eval file given by
    path); ``progress`` is ``off``, ``lines`` or ``bar``.

    Runs without variants (a variant group runs through ``evalrun run``). Uses ``asyncio.run``,
    so call it from synchronous code."""
    from evalrun.engine import RunOptions, run_eval, run_in_loop
    from evalrun.postrun import post_run_needed, prepare

    check_options(config=config, concurrency=concurrency, repeat=repeat, limit=limit, filters=filters,
                  sample=sample, seed=seed, shard=shard, home=home, resume=resume, baseline=baseline,
                  reports=reports, slices=slices, push=push, progress=progress)
    resume, baseline = _text(resume), _text(baseline)
    from evalrun.overrides import check_overrides

    overrides = check_overrides(overrides)
    check_resume(resume, config, overrides, repeat=repeat, limit=limit, filters=filters, sample=sample,
                 seed=seed, shard=shard)
    home_path = Path(home) if home is not None else None
    # the eval file is read and validated once; the checks below and the engine share it
    loaded, resume = load_for_run(config, overrides, resume, home_path)
    if resume and baseline is None:  # the interrupted run's own --baseline, unless another is given
        from evalrun.store import resolve_run

        baseline = (resolve_run(resume, home_path).read_manifest().get("options") or {}).get("baseline")
    if loaded.variant is None and loaded.config.variants is not None:
        raise UsageError(f"{loaded.path} has variants: a variant group runs through the command line "
                         "(evalrun run); the library runs one eval")
    opts = RunOptions(config_path=str(loaded.path), concurrency=concurrency, repeat=repeat, limit=limit,
                      filters=list(filters or []), sample=sample, seed=seed, shard=shard, home=home_path,
                      resume=resume, progress=progress, overrides=loaded.overrides, loaded=loaded,
                      on_start=trace_context(push))
    # gates, baseline and --report are checked before the run starts: bad input costs no calls
    prepared = prepare(loaded, baseline_ref=baseline, reports=reports, home=home_path, repeat=repeat, slices=slices,
                       dataset=lambda: _read_dataset(loaded, opts))
    post = prepared if post_run_needed(prepared) else None
    if post is not None and post.baseline is not None:
        opts.baseline_outputs = post.baseline.outputs()
        if baseline is not None:  # `latest` now is not `latest` when the run is resumed: keep where it was
            opts.baseline = str(post.baseline.path) if post.baseline.path is not None else post.baseline.source
    if shard and post is not None and post.gates:
        # a slice's gates mean little, and failing them would stop a matrix job before
        # `evalrun merge` judges the whole run
        post.gates = []
        post.notes.append("gates are judged on the merged run (evalrun merge), not on a shard")
    outcome = run_in_loop(run_eval(opts))
    verdict = None
    if post is not None and outcome.status != "interrupted":
        verdict = post.finish(outcome.run_dir, outcome.summary, status=outcome.status, console=False)
    return RunResult(outcome.run_dir, outcome.summary, outcome.status, verdict, outcome.items)


def _read_dataset(loaded: LoadedConfig, opts: RunOptions) -> Dataset:
    """The run's dataset, read (fetched) once: the checks before the run and the engine share it."""
    from evalrun.datasets import load_dataset

    if opts.dataset is None:
        opts.dataset = load_dataset(loaded.config.dataset, loaded.base_dir)
    return opts.dataset


def load_for_run(config: str | Path | LoadedConfig | None, overrides: dict[str, Any] | None,
                 resume: str | None, home: Path | None) -> tuple[LoadedConfig, str | None]:
    """The eval file a run uses, loaded (read, expanded, validated) once: ``config`` itself, or
    the file at ``config`` with ``overrides``, or for ``resume`` the run's own file and
    ``--set`` values (its manifest's). With the run to resume as a directory, so every later
    step reopens the same run even when ``resume`` was ``latest``."""
    from evalrun.config import LoadedConfig, load_config
    from evalrun.overrides import check_overrides

    if isinstance(config, LoadedConfig):
        return config, resume
    if resume:
        from evalrun.store import resolve_run

        rd = resolve_run(resume, home)
        saved = rd.read_manifest()
        try:
            overrides = check_overrides(saved.get("overrides"))
        except UsageError as e:
            raise UsageError(f"{rd.path / 'manifest.json'}: {e.message}") from None
        return load_config(saved.get("config_path"), overrides), str(rd.path)
    return load_config(config, overrides), None


def trace_context(push: bool) -> Callable[[Target, RunDir, Manifest], None]:
    """The ``RunOptions.on_start`` hook of a run started here or by the CLI: the live Langfuse
    trace context (:mod:`evalrun.langfuse.tracecontext`) for a run that is pushed or has
    ``langfuse:`` settings; any other run never imports ``evalrun.langfuse``."""

    def start(target: Target, run_dir: RunDir, manifest: Manifest) -> None:
        if push or (manifest.get("config") or {}).get("langfuse"):
            from evalrun.langfuse.tracecontext import install

            install(target, run_dir, manifest, push)

    return start


_COUNTS = {"concurrency": (1, 10_000), "repeat": (1, 1000), "limit": (1, None), "sample": (1, None),
           "seed": (None, None)}
_TEXTS = ("shard", "resume", "baseline", "run")
_LISTS = ("filters", "reports", "slices")
PROGRESS_MODES = ("off", "lines", "bar")


def _text(value: str | PathLike[str] | None) -> str | None:
    """A run reference given as a path (``result.run_dir.path``) as the text the CLI would get."""
    return None if value is None else fspath(value)


def check_options(**given: Any) -> None:
    """The library's options, checked as the command line checks its own (types and ranges), so
    a wrong one is a UsageError naming it, never a TypeError from deep inside a run."""
    from evalrun.config import LoadedConfig

    def fail(name: str, want: str) -> None:
        raise UsageError(f"{name}={given[name]!r}: expected {want}")

    for name, (lo, hi) in _COUNTS.items():
        v = given.get(name)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or (lo is not None and v < lo) or (hi is not None and v > hi):
            fail(name, "a whole number" + (f" from {lo}" if lo is not None else "") + (f" to {hi}" if hi else ""))
    for name in _TEXTS:
        v = given.get(name)
        if name == "shard" and v is not None and not isinstance(v, str):
            fail(name, "text like '2/4'")
        if v is not None and not (isinstance(v, str) or (isinstance(v, PathLike) and isinstance(fspath(v), str))):
            fail(name, "text or a path (a run id, a directory, 'latest'...)")
    for name in _LISTS:
        v = given.get(name)
        if v is not None and (not isinstance(v, list | tuple) or not all(isinstance(x, str) for x in v)):
            fail(name, "a list of strings")
    for name, kinds in (("home", (str, PathLike)), ("config", (str, PathLike, LoadedConfig))):
        v = given.get(name)
        if v is not None and not isinstance(v, kinds):
            fail(name, "a path" + (" or a LoadedConfig" if name == "config" else ""))
    if "push" in given and not isinstance(given["push"], bool):
        fail("push", "True or False")
    if "progress" in given and given["progress"] not in PROGRESS_MODES:
        fail("progress", " | ".join(PROGRESS_MODES))


def check_resume(resume: str | None, config: object, overrides: dict[str, Any] | None, **plan: Any) -> None:
    """A resumed run keeps its eval file, its ``--set`` values and its plan (items x trials):
    changing them mid-way would mix records of two plans in one run."""
    if resume and config is not None:
        raise UsageError("--resume takes the eval file from the run's manifest; don't pass one")
    if resume and overrides:
        raise UsageError("--resume keeps the run's own --set values; drop --set")
    if resume:
        given = ["--" + name.replace("filters", "filter") for name, v in plan.items() if v]
        if given:
            raise UsageError(f"--resume keeps the run's own plan; drop {', '.join(given)}")


def compare(run: str | PathLike[str], baseline: str | PathLike[str] | None = None, *, home: str | Path | None = None,
            reports: list[str] | None = None, slices: list[str] | None = None) -> Verdict:
    """Compare saved run ``run`` (an id, a run directory or ``latest``) with ``baseline`` (a run,
    ``latest``, ``accepted``, a baseline file; default: the accepted baseline, else the previous
    run of the same eval) and judge the gates it was configured with. ``verdict.passed`` says
    whether every gate held; ``reports`` are written as with ``evalrun compare --report``."""
    from evalrun.postrun import prepare_from_manifest
    from evalrun.store import resolve_run

    check_options(run=run, baseline=baseline, home=home, reports=reports, slices=slices)
    run, baseline = str(_text(run)), _text(baseline)
    home_path = Path(home) if home is not None else None
    rd = resolve_run(run, home_path)
    manifest = rd.read_manifest()
    post = prepare_from_manifest(manifest, baseline_ref=baseline, reports=reports, home=home_path,
                                 default_latest_before=rd.id, slices=slices)
    if post.baseline is None:
        raise UsageError(f"no baseline to compare run {rd.id} with: pass one (a run id, 'latest', a baseline "
                         "file) or accept a run with  evalrun baseline set RUN")
    return post.finish(rd, status=manifest.get("status"), console=False)
