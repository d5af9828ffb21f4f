"""Variants: several candidates of one eval (the file plus each variant's overrides) run over
the same items in one command, as a group of runs, and judged side by side.

A group lives in ``<home>/groups/<group-id>/``: ``group.json`` says which run is which
variant, which variant the others are paired with (``compare_to``), which variants gate,
and the options the group started with; the group's reports are written next to it. Each
variant is an ordinary run directory ``<group-id>.<variant>`` whose manifest names its
group, so ``show``, ``compare``, ``push`` and ``baseline set`` work on it like on any run.

Target calls of all variants share one concurrency limit and one start rate (the file's, or
``--concurrency``), taken first come first served, so a slow variant holds no more than its
share and never serialises the others. Every variant is compared with the reference variant
through :mod:`evalrun.postrun` (the same pairing, intervals, regressions and gate verdicts a
baseline comparison gets); relative gates use the accepted baseline instead when there is
one (or ``--baseline``).
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalrun.baseline import Baseline
from evalrun.config import LoadedConfig, load_config
from evalrun.datasets import Dataset, load_dataset
from evalrun.engine import RunOptions, RunOutcome, SharedLimits, now_iso, on_interrupt, run_eval
from evalrun.errors import UsageError, suggest, verdict_word
from evalrun.postrun import PostRun, prepare, prepare_from_manifest
from evalrun.report import DEFAULT_FILES, ReportSpec, parse_report_specs
from evalrun.store import RunDir, default_home, new_run_id, resolve_run, write_json_atomic, write_text_atomic
from evalrun.verdict import GroupVerdict, VariantResult

if TYPE_CHECKING:
    from evalrun.langfuse.push import AfterRun

GROUP_FILE = "group.json"


# ----------------------------------------------------------------------------- the group on disk


@dataclass
class Group:
    path: Path  # <home>/groups/<id>
    doc: dict[str, Any]
    home: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def names(self) -> list[str]:
        return list(self.doc["variants"])

    @property
    def reference(self) -> str:
        return str(self.doc["compare_to"])

    def run_dir(self, name: str) -> RunDir:
        return RunDir(self.home / "runs" / self.doc["variants"][name])

    def save(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path / GROUP_FILE, self.doc)


def _groups_root(home: Path | None) -> Path:
    return (home or default_home()) / "groups"


def _load_group(path: Path, home: Path | None) -> Group:
    from evalrun import _json

    try:
        doc = _json.loads((path / GROUP_FILE).read_bytes())
    except ValueError as e:
        raise UsageError(f"corrupt {GROUP_FILE}: {e}", str(path / GROUP_FILE)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("variants"), dict):
        raise UsageError(f"not a variant group ({GROUP_FILE} has no variants)", str(path / GROUP_FILE))
    return Group(path, doc, home or default_home())


def find_group(ref: str, home: Path | None = None) -> Group | None:
    """The group ``ref`` names: a group id or folder, a run of a group (a variant's run id,
    ``latest``), or a unique prefix of a group id; None when ``ref`` is a run outside any group."""
    root = _groups_root(home)
    p = Path(ref)
    if (p / GROUP_FILE).is_file():
        return _load_group(p, home if home is not None else p.parent.parent)
    if (root / ref / GROUP_FILE).is_file():
        return _load_group(root / ref, home)
    try:
        rd: RunDir | None = resolve_run(ref, home)
    except UsageError:
        rd = None  # not a run, or a prefix of several (a group id prefixes its variants' runs)
    if rd is not None:
        gid = (rd.read_manifest().get("group") or {}).get("id")
        return _load_group(root / gid, home) if gid and (root / gid / GROUP_FILE).is_file() else None
    matches = sorted(d for d in root.iterdir() if d.name.startswith(ref) and (d / GROUP_FILE).is_file()) \
        if root.is_dir() else []
    if len(matches) > 1:
        raise UsageError(f"group id prefix {ref!r} is ambiguous: " + ", ".join(m.name for m in matches[:5]))
    return _load_group(matches[0], home) if matches else None


# ----------------------------------------------------------------------------- before the run


@dataclass
class GroupPlan:
    """Everything checked before any target call: each variant's config, gates and baseline."""

    config_path: str
    names: list[str]
    reference: str
    gated: list[str]
    loaded: dict[str, LoadedConfig]
    posts: dict[str, PostRun]
    reports: list[ReportSpec]
    notes: list[str] = field(default_factory=list)
    #: the group's dataset, read once when first asked (the gates' check, then every variant's
    #: run); None: read when the group runs (a resumed group)
    dataset: Callable[[], Dataset] | None = None


def _select(base: LoadedConfig, asked: list[str] | None) -> tuple[list[str], str, list[str]]:
    cfg = base.config
    names = cfg.variant_names
    if not names:
        raise base.error("--variant needs a 'variants:' section in the eval file")
    chosen = names
    if asked:
        for a in asked:
            if a not in names:
                raise UsageError(f"--variant {a}: no such variant{suggest(a, names)}; variants: {', '.join(names)}")
        chosen = [n for n in names if n in asked]
    ref = cfg.reference_variant
    if ref not in chosen:
        ref = chosen[0]
    gated = [n for n in (cfg.gate_variants if cfg.gate_variants is not None else names) if n in chosen]
    return chosen, str(ref), gated


def plan_group(base: LoadedConfig, asked: list[str] | None, *, home: Path | None, baseline_ref: str | None,
               reports: list[str] | None, repeat: int | None, shard: str | None,
               slices: list[str] | None = None) -> GroupPlan:
    """Load and check every variant of the eval file ``base`` (config, target import, gates,
    baseline, --report); its ``--set`` values apply to every variant, over its own."""
    from evalrun.engine import build_target

    names, ref, gated = _select(base, asked)
    notes: list[str] = []
    if ref != base.config.reference_variant:
        notes.append(f"compare_to variant '{base.config.reference_variant}' is not among --variant; "
                     f"comparing with '{ref}'")
    loaded = {n: load_config(base.path, base.overrides, variant=n) for n in names}
    for lv in loaded.values():
        if lv.config.target.kind == "python":
            build_target(lv, 1)  # an unimportable target fails here, before any variant runs
    # variants cannot override the dataset: one read serves the slice gates' check and every run
    dataset = functools.cache(lambda: load_dataset(base.config.dataset, base.base_dir))
    posts = {n: prepare(lv, baseline_ref=baseline_ref, home=home, repeat=repeat, slices=slices, dataset=dataset)
             for n, lv in loaded.items()}
    if shard:
        notes.append(_gates_on_merge(posts))
    return GroupPlan(str(base.path), names, ref, gated, loaded, posts, parse_report_specs(reports), notes, dataset)


def _gates_on_merge(posts: dict[str, PostRun]) -> str:
    """A shard of a group is not gated (as for one run: a slice's gates mean little, and
    failing them would stop a matrix job); `evalrun merge` judges the whole group."""
    for p in posts.values():
        p.gates = []
    return "gates are judged on the merged group (evalrun merge), not on a shard"


def plan_from_group(group: Group, *, baseline_ref: str | None = None, reports: list[str] | None = None,
                    home: Path | None = None, resume: bool = False, slices: list[str] | None = None) -> GroupPlan:
    """The plan of an existing group: the gates its runs were started with (their manifests);
    to ``resume`` it, also every variant's config, re-read (the engine checks each run's
    fingerprint, so an edited eval file is refused)."""
    path = group.doc["config_path"]
    sets = group.doc.get("set") or {}
    loaded = {n: load_config(path, sets, variant=n) for n in group.names} if resume else {}
    posts = {}
    for n in group.names:
        rd = group.run_dir(n)
        if rd.exists():
            posts[n] = prepare_from_manifest(rd.read_manifest(), baseline_ref=baseline_ref, home=home, slices=slices)
        elif n in loaded:  # stopped before this variant's run directory was written
            posts[n] = prepare(loaded[n], baseline_ref=baseline_ref, home=home, slices=slices)
        else:
            raise UsageError(f"variant '{n}' of group {group.id} never started; resume the group first: "
                             f"evalrun run --resume {group.id}")
    notes = [_gates_on_merge(posts)] if group.doc.get("shard") else []
    return GroupPlan(path, group.names, group.reference, list(group.doc.get("gated") or []),
                     loaded, posts, parse_report_specs(reports), notes)


def new_group(plan: GroupPlan, opts: RunOptions) -> Group:
    home = opts.home or default_home()
    gid = new_run_id()
    base = plan.loaded[plan.names[0]]
    doc = {"group_id": gid, "eval": base.config.name, "config_path": str(Path(plan.config_path).resolve()),
           "variants": {n: f"{gid}.{n}" for n in plan.names}, "compare_to": plan.reference, "gated": plan.gated,
           "overrides": {n: (base.config.variants or {}).get(n) or {} for n in plan.names},
           "set": base.overrides,
           "options": {**opts.to_manifest(), "concurrency": opts.concurrency or base.config.concurrency},
           "shard": opts.shard, "started_at": now_iso(), "started_ts": time.time(), "status": "running"}
    group = Group(_groups_root(home) / gid, doc, home)
    group.save()
    return group


# ----------------------------------------------------------------------------- running


async def run_group(group: Group, plan: GroupPlan, opts: RunOptions) -> dict[str, RunOutcome]:
    """Run (or resume) every variant of ``group`` in this event loop, under shared limits."""
    base_cfg = plan.loaded[plan.names[0]].config
    concurrency = int((group.doc.get("options") or {}).get("concurrency") or base_cfg.concurrency)
    shared = SharedLimits(concurrency, base_cfg.rate)
    done: dict[str, RunOutcome] = {}
    tasks: dict[str, asyncio.Task[RunOutcome]] = {}
    progress = "lines" if opts.progress == "bar" else opts.progress  # one live bar per terminal
    # variants cannot override the dataset: it is read once (one fetch of a remote one, so every
    # variant runs the same items even if the source changes meanwhile) and shared
    dataset: Dataset | None = None
    for n in plan.names:
        rd = group.run_dir(n)
        started = rd.exists()
        if started and rd.read_manifest().get("status") == "finished":
            done[n] = RunOutcome(rd, rd.read_summary() or {}, "finished")
            continue
        if dataset is None:
            try:
                dataset = plan.dataset() if plan.dataset is not None else load_dataset(
                    base_cfg.dataset, plan.loaded[n].base_dir)
            except BaseException:
                # as when a variant's own run fails: the group is saved as failed, not left running
                _save_status(group, "failed", bool(opts.resume))
                raise
        o = dataclasses.replace(
            # each run its own copy of the items: a target that edits its input in place must
            # not change what another variant is given (or its records not yet written)
            opts, loaded=plan.loaded[n], dataset=copy.deepcopy(dataset) if tasks else dataset, shared=shared, run_id=rd.id, resume=rd.id if started else None,
            config_path=plan.config_path, progress=progress, filters=list(opts.filters),
            manifest_extra={"group": {"id": group.id, "variant": n, "compare_to": plan.reference,
                                      "overrides": group.doc["overrides"].get(n) or {}}})
        if started:  # resume keeps the run's own plan
            o.repeat = o.limit = o.sample = o.seed = o.shard = o.concurrency = None
            o.filters = []
        elif opts.resume:  # never started before the group stopped: the group's plan
            saved = group.doc.get("options") or {}
            for k in ("repeat", "limit", "sample", "seed", "shard", "concurrency"):
                setattr(o, k, saved.get(k))
            o.filters = list(saved.get("filters") or [])
        tasks[n] = asyncio.create_task(run_eval(o), name=f"variant:{n}")

    def stop_all() -> None:
        running = {e.plan.loaded.variant for e in shared.engines}
        for e in shared.engines:
            e.stop()
        for n, t in tasks.items():
            if n not in running:
                t.cancel()  # still preparing: nothing of it to save

    restore_signals = on_interrupt(stop_all, "partial results of every variant")
    try:
        results = await asyncio.gather(*tasks.values(), return_exceptions=True)
    finally:
        restore_signals()
    errors: list[BaseException] = []
    for n, res in zip(tasks, results, strict=True):
        if isinstance(res, RunOutcome):
            done[n] = res
        elif isinstance(res, asyncio.CancelledError):
            rd = group.run_dir(n)
            done[n] = RunOutcome(rd, rd.read_summary() or {} if rd.exists() else {}, "interrupted")
        else:
            errors.append(res)
    statuses = {o.status for o in done.values()}
    _save_status(group, "failed" if errors or "failed" in statuses else
                 "interrupted" if "interrupted" in statuses else "finished", bool(opts.resume))
    if errors:
        # every other variant finished and saved what it had; the first failure decides the exit
        raise errors[0]
    return {n: done[n] for n in plan.names}


def _save_status(group: Group, status: str, resumed: bool) -> None:
    group.doc["status"] = status
    if resumed:
        group.doc.setdefault("resumed_at", []).append(now_iso())
    group.doc["finished_at"] = now_iso()
    group.save()


# ----------------------------------------------------------------------------- judging


def _reference_baseline(rd: RunDir, name: str) -> Baseline:
    m = rd.read_manifest()
    return Baseline(rd.records(), f"variant {name}", "run", m.get("eval"), rd.id, rd.read_summary(),
                    config_fingerprint=m.get("config_fingerprint"), path=rd.path)


def judge_group(group: Group, plan: GroupPlan) -> GroupVerdict:
    """Pair every variant with the reference and judge each one's gates."""
    statuses = {n: group.run_dir(n).read_manifest().get("status") or "running" for n in plan.names}
    ref_rd = group.run_dir(plan.reference)
    ref_bl = _reference_baseline(ref_rd, plan.reference)
    results = []
    gate_baseline = None
    policy = "significant"
    for n in plan.names:
        rd = group.run_dir(n)
        post = plan.posts[n]
        policy = post.policy
        summary = rd.read_summary()
        vs_ref = dataclasses.replace(post, baseline=None if n == plan.reference else ref_bl, reports=[], notes=[])
        paired = vs_ref.judge(rd, summary, statuses[n], context=False)
        gate_verdict = paired
        if post.baseline is not None:
            gate_baseline = post.baseline.info()
            gate_verdict = post.judge(rd, summary, statuses[n], context=False)
        results.append(VariantResult(n, rd, statuses[n], paired, gate_verdict, n in plan.gated,
                                     (group.doc.get("overrides") or {}).get(n) or {}))
    notes = list(plan.notes)
    for n in plan.names:
        for note in plan.posts[n].notes:
            if note not in notes and not (gate_baseline is None and "no baseline" in note):
                notes.append(note)
    status = group.doc.get("status") or "finished"
    return GroupVerdict(group.id, str(group.doc.get("eval")), plan.reference, results, policy, gate_baseline,
                        status, notes)


def write_group_reports(gv: GroupVerdict, specs: list[ReportSpec], group: Group, *, console: bool = True,
                        out: Any = None) -> None:
    """As :func:`evalrun.report.write_reports`, for the variant matrix (files in the group folder)."""
    from evalrun.report import matrix, write_files

    out = out or sys.stdout
    if console:
        matrix.print_console(gv, out)
    write_files(specs, lambda fmt: matrix.render(gv, fmt), group.path, gv.written, out)


# ----------------------------------------------------------------------------- GitHub, Langfuse, merge


def publish_group(group: Group, gv: GroupVerdict | None, sources: dict[str, str]) -> None:
    """In GitHub Actions: the matrix as the job summary (and report.md in the group folder for
    the PR comment step), the gated variants' failed gates and regressions as annotations
    titled with the variant, placed by ``sources`` (item id -> file:line), and the step outputs
    (``run_id`` is the group id)."""
    from evalrun import github

    status = group.doc.get("status") or "finished"
    word = verdict_word(status)
    markdown = report_path = None
    findings: list[github.Finding] = []
    if gv is not None:
        from evalrun.report.matrix import render_markdown

        word = verdict_word(status, gv.passed, gv.incomplete)
        report_path = next((p for fmt, p in gv.written if fmt == "md"), None)
        markdown = Path(report_path).read_text(encoding="utf-8") if report_path else render_markdown(gv)
        if report_path is None:
            report_path = str(group.path / DEFAULT_FILES["md"])
            write_text_atomic(Path(report_path), markdown)
        for r in gv.results:
            if r.gated:
                findings += [dataclasses.replace(f, title=f"[{r.name}] {f.title}")
                             for f in github.findings_from_verdict(r.gate_verdict)]
    pub = github.Publication(run_id=group.id, verdict=word, pass_rate=None, markdown=markdown,
                             report_path=str(Path(report_path).resolve()) if report_path else None,
                             findings=findings, extra_outputs={"group_dir": str(group.path.resolve())})
    github.publish(pub, sources, None)


def push_group(group: Group, outcomes: dict[str, RunOutcome], asked: bool) -> list[tuple[str, AfterRun]]:
    """Each variant as its own experiment run ``<run>/<variant>`` on the same dataset items:
    (variant, what its push did) for each variant pushed."""
    from evalrun.langfuse.push import AfterRun, push_after_run, run_settings  # noqa: F811 (runtime use)

    out = []
    for n, o in outcomes.items():
        if o.status == "interrupted":
            continue
        m = o.run_dir.read_manifest()
        if not asked and not ((m.get("config") or {}).get("langfuse") or {}).get("push"):
            continue
        try:
            base = run_settings(m).get("run_name") or f"{m.get('eval')}-{group.id}"
        except UsageError as e:
            out.append((n, AfterRun(f"langfuse: not pushed: {e}", False)))
            continue
        out.append((n, push_after_run(o.run_dir, overrides={"run_name": f"{base}/{n}"})))
    return out


def merge_groups(groups: list[Group], home: Path | None) -> tuple[Group, dict[str, RunOutcome]]:
    """Shard groups (``evalrun run --shard i/n`` of an eval with variants) -> one group whose
    every variant is the merge of that variant's shards."""
    from evalrun.merge import load_shards, write_merged

    names = groups[0].names
    for g in groups[1:]:
        if g.names != names or g.reference != groups[0].reference:
            raise UsageError(f"cannot merge: group {g.id} has variants {', '.join(g.names)}, "
                             f"group {groups[0].id} has {', '.join(names)}")
    shard_sets = {n: load_shards([str(g.run_dir(n).path) for g in groups], home) for n in names}
    gid = new_run_id()
    home = home or default_home()
    outcomes: dict[str, RunOutcome] = {}
    variants = {}
    for n in names:
        rd, summary = write_merged(shard_sets[n], home)
        m = rd.read_manifest()
        m["group"] = {**(m.get("group") or {}), "id": gid}
        rd.write_manifest(m)
        variants[n] = rd.id
        outcomes[n] = RunOutcome(rd, summary, summary["status"])
    first = groups[0].doc
    doc = {**first, "group_id": gid, "variants": variants, "shard": None,
           "merged_from": [{"group_id": g.id, "shard": g.doc.get("shard")} for g in groups],
           "status": "failed" if any(o.status == "failed" for o in outcomes.values()) else "finished",
           "finished_at": now_iso()}
    doc.pop("resumed_at", None)
    group = Group(_groups_root(home) / gid, doc, home)
    group.save()
    return group, outcomes
