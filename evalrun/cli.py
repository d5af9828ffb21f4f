"""The command line: parse options, call the library, render, set the exit code."""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from evalrun.errors import EvalrunError, ExitCode, UsageError

if TYPE_CHECKING:
    from evalrun.config import LoadedConfig
    from evalrun.engine import RunOptions, RunOutcome
    from evalrun.langfuse.push import AfterRun
    from evalrun.postrun import PostRun
    from evalrun.variants import Group, GroupPlan
    from evalrun.verdict import Verdict

app = typer.Typer(help="evalrun: eval and regression runner for LLM pipelines.", no_args_is_help=True,
                  add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)

_debug = False


def _print_version(value: bool) -> None:
    if value:
        from evalrun._version import __version__

        typer.echo(f"evalrun {__version__}")
        raise typer.Exit(ExitCode.OK)


@app.callback()
def _root(debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")] = False,
          version: Annotated[bool, typer.Option(
              "--version", help="Print the version and exit.", is_eager=True, callback=_print_version)] = False) -> None:
    global _debug
    _debug = debug


BaselineOpt = Annotated[str | None, typer.Option(
    "--baseline", metavar="REF",
    help="Compare with: a run id or directory, a results file, 'latest', 'accepted' or a baseline file.")]
ReportOpt = Annotated[list[str] | None, typer.Option(
    "--report", metavar="FORMAT[:PATH]",
    help="console, md, junit, html or json; PATH '-' is stdout, default a file in the run directory. Repeatable.")]
PushOpt = Annotated[str | None, typer.Option("--push", metavar="langfuse",
                                             help="Send the run to Langfuse when it ends (keys from LANGFUSE_* env).")]
PushRequiredOpt = Annotated[bool, typer.Option(
    "--push-required", help="Exit 3 when the push to Langfuse is not delivered (implies --push langfuse).")]


def _check_push(push: str | None) -> None:
    if push is not None and push != "langfuse":
        raise UsageError(f"--push takes 'langfuse' (got {push!r})")


# beyond these a number is a typo, and would only build an endless plan or a thread per slot
MAX_CONCURRENCY = 10_000
MAX_REPEAT = 1000  # the eval file's bound too (config.EvalConfig.repeat): one limit however it is set


def check_paths(output_dir: Path | None, reports: list[str] | None, baseline: str | None) -> None:
    """Paths and references a run will write or read, checked before any target call."""
    if baseline is not None and not baseline.strip():
        raise UsageError("--baseline is empty; give a run id, a run directory, a results file, 'latest' or 'accepted'")
    if output_dir is not None:
        from evalrun.engine import check_home

        check_home(output_dir)
    for spec in reports or []:
        _, sep, path = spec.partition(":")
        path = path.strip()
        if not sep or not path or path == "-":
            continue
        p = Path(path)
        if p.is_dir():
            raise UsageError(f"--report {spec}: the path is a directory; give a file name", path)
        parent = p.parent if str(p.parent) else Path(".")
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"--report {spec}: {parent} is not a directory", path)
        if parent.is_dir() and not os.access(parent, os.W_OK | os.X_OK):
            raise UsageError(f"--report {spec}: cannot write in {parent}", path)


HomeOpt = Annotated[Path | None, typer.Option("--output-dir", help="Where runs and the cache live (default .evalrun).")]
#: run and merge print the same summary
SliceOpt = Annotated[list[str] | None, typer.Option(
    "--slice", metavar="KEY", help="Per-slice results by this key (tags, metadata.KEY); repeatable, adds to the "
    "eval file's slices.")]
SummaryJsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")]
WideOpt = Annotated[bool, typer.Option("--wide", help="Every column and each regressed item in full (default: a "
                                       "compact report that fits 100 columns).")]


@app.command()
def run(
    config: Annotated[str | None, typer.Argument(help="Eval file (default: evalrun.yaml).")] = None,
    concurrency: Annotated[int | None, typer.Option(help="Target calls in flight.", min=1, max=MAX_CONCURRENCY)] = None,
    repeat: Annotated[int | None, typer.Option(help="Trials per item.", min=1, max=MAX_REPEAT)] = None,
    limit: Annotated[int | None, typer.Option(help="Run only the first N items.", min=1)] = None,
    filter: Annotated[list[str] | None, typer.Option("--filter", help="Metadata key=value (tag=x for tags); repeatable.")] = None,
    sample: Annotated[int | None, typer.Option(help="Run a random sample of N items.", min=1)] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for --sample.")] = None,
    shard: Annotated[str | None, typer.Option(help="Run shard i of n (i/n), by item id hash.")] = None,
    output_dir: HomeOpt = None,
    resume: Annotated[str | None, typer.Option(help="Continue an interrupted run (latest if no id).")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress, no table.")] = False,
    json_out: SummaryJsonOpt = False,
    push: PushOpt = None,
    push_required: PushRequiredOpt = False,
    baseline: BaselineOpt = None,
    report: ReportOpt = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="KEY=VALUE",
        help="Override an eval-file key (dotted: target.chat.prompt=langfuse://qa@4); repeatable.")] = None,
    slice: SliceOpt = None,
    variant: Annotated[list[str] | None, typer.Option(
        "--variant", metavar="NAME", help="Run only this variant of the eval file's variants: (repeatable).")] = None,
    wide: WideOpt = False,
) -> None:
    """Run an eval: every item through the target, scored, saved in a run directory. With
    'variants:' in the eval file, every variant over the same items, compared side by side."""
    _check_push(push)
    if push_required:
        push = "langfuse"
    from evalrun import api
    from evalrun.engine import RunOptions, RunOutcome
    from evalrun.overrides import parse_set_options
    from evalrun.progress import Progress

    overrides = parse_set_options(set_ or [])
    api.check_resume(resume, config, overrides, repeat=repeat, limit=limit, filters=filter, sample=sample,
                     seed=seed, shard=shard)
    check_paths(output_dir, report, baseline)
    if variant and resume:
        raise UsageError("--resume continues every variant of the group; drop --variant")
    group = None
    if resume:  # a variant group's id resumes the whole group
        from evalrun.variants import find_group

        group = find_group(resume, output_dir)
    # the eval file is read and validated once per command: here, or (--resume) from the run's manifest
    loaded = None
    if not resume:
        from evalrun.config import load_config

        loaded = load_config(config, overrides)
        if loaded.config.variants is None and variant:
            raise loaded.error("--variant needs a 'variants:' section in the eval file")
    if group is not None or (loaded is not None and loaded.config.variants is not None):
        opts = RunOptions(config_path=config, concurrency=concurrency, repeat=repeat, limit=limit,
                          filters=filter or [], sample=sample, seed=seed, shard=shard, home=output_dir,
                          resume=resume, progress=Progress.auto(quiet), overrides=overrides,
                          on_start=api.trace_context(push is not None))
        _run_group(opts, group, loaded, variant, baseline, report, push is not None, json_out, quiet, slice,
                   push_required)
    result = api.run(loaded, concurrency=concurrency, repeat=repeat, limit=limit, filters=filter, sample=sample,
                     seed=seed, shard=shard, home=output_dir, resume=resume, baseline=baseline, reports=report,
                     slices=slice, push=push is not None, progress=Progress.auto(quiet))
    outcome = RunOutcome(result.run_dir, result.summary, result.status, result.items)
    undelivered = _push_after_run(outcome, push is not None, push_required)
    _render_run(outcome, result.verdict, json_out, quiet, undelivered, wide)


def _run_group(opts: RunOptions, group: Group | None, base: LoadedConfig | None, asked: list[str] | None,
               baseline: str | None, report: list[str] | None, push: bool, json_out: bool, quiet: bool,
               slices: list[str] | None = None, push_required: bool = False) -> None:
    """``evalrun run`` of an eval file with variants (``base``, loaded) or ``--resume`` of a
    group: every variant run under shared limits, then one comparison; exits with the group's code."""
    from evalrun import variants as v
    from evalrun.engine import run_in_loop

    if group is None:
        assert base is not None
        plan = v.plan_group(base, asked, home=opts.home, baseline_ref=baseline, reports=report,
                            repeat=opts.repeat, shard=opts.shard, slices=slices)
        group = v.new_group(plan, opts)
    else:
        if group.doc.get("status") == "finished" or group.doc.get("merged_from"):
            raise UsageError(f"group {group.id} already finished; nothing to resume")
        plan = v.plan_from_group(group, baseline_ref=baseline, reports=report, home=opts.home, resume=True,
                                 slices=slices)
    bl = plan.posts[plan.reference].baseline
    if bl is not None:
        opts.baseline_outputs = bl.outputs()
    outcomes = run_in_loop(v.run_group(group, plan, opts))
    undelivered = _report_pushes(v.push_group(group, outcomes, push), outcomes, push_required)
    _finish_group(group, plan, outcomes, json_out, quiet, undelivered)


def _finish_group(group: Group, plan: GroupPlan, outcomes: dict[str, RunOutcome], json_out: bool,
                  quiet: bool, push_undelivered: bool = False) -> None:
    from evalrun import variants as v

    status = group.doc.get("status") or "finished"
    verdict = None
    if status != "interrupted":
        verdict = v.judge_group(group, plan)
        v.write_group_reports(verdict, plan.reports, group, console=not quiet and not json_out)
    from evalrun import github

    if github.active():
        v.publish_group(group, verdict, _item_sources(outcomes.values()))
    if json_out:
        from evalrun._json import json_pretty

        doc: dict = {"group_id": group.id, "status": status,
                     "variants": {n: o.summary for n, o in outcomes.items()}}
        if verdict is not None:
            doc["verdict"] = verdict.brief()
        sys.stdout.write(json_pretty(doc))
    if verdict is not None and not quiet:
        for fmt, path in verdict.written:
            typer.echo(f"{fmt} report: {path}", err=True)
    if not quiet and not json_out:
        if status == "interrupted":
            typer.echo(f"interrupted: resume with  evalrun run --resume {group.id}", err=True)
        else:
            for n, o in outcomes.items():
                typer.echo(f"{n}: run {o.status}, saved in {o.run_dir.path}", err=True)
            typer.echo(f"group {group.id}: {group.path}", err=True)
    else:
        for n, o in outcomes.items():  # why the exit code is 3, whatever --quiet or --json say
            if o.status == "failed":
                typer.echo(f"{n}: {_failed_line(o)}", err=True)
    code = verdict.exit_code if verdict is not None and status == "finished" else ExitCode.of_run(status)
    raise typer.Exit(_with_push(code, push_undelivered))


def _with_push(code: int, push_undelivered: bool) -> int:
    """A required push that was not delivered fails an otherwise passing command (exit 3)."""
    return ExitCode.RUN_FAILED if push_undelivered and code == ExitCode.OK else code


def _push_after_run(outcome: RunOutcome, asked: bool, required: bool = False) -> bool:
    """``--push langfuse`` or ``langfuse: {push: true}``: send the saved run. An undelivered push
    is a warning (and an Actions annotation); returns True when it must fail the command
    (``--push-required`` or ``langfuse: {required: true}``)."""
    if outcome.status == "interrupted":
        return False
    manifest = outcome.run_dir.read_manifest()
    if not asked and not ((manifest.get("config") or {}).get("langfuse") or {}).get("push"):
        return False
    from evalrun.langfuse.push import push_after_run

    return _report_pushes([("", push_after_run(outcome.run_dir))], {"": outcome}, required)


def _report_pushes(pushed: list[tuple[str, AfterRun]], outcomes: Mapping[str, RunOutcome], required: bool) -> bool:
    """Print each push's line; an undelivered one as a warning (``::warning`` under Actions).
    True when one was undelivered and the push is required (flag or the run's eval file)."""
    from evalrun import github
    from evalrun.langfuse.push import push_required

    failed = False
    for name, after in pushed:
        line = f"{name}: {after.line}" if name else after.line
        if after.delivered:
            typer.echo(line, err=True)
            continue
        typer.echo(f"warning: {line}", err=True)
        if github.active():
            github.emit_command(github.annotation("warning", line, title="Langfuse push not delivered"), sys.stdout)
        failed = failed or required or push_required(outcomes[name].run_dir.read_manifest())
    return failed


def _item_sources(outcomes: Iterable[RunOutcome]) -> dict[str, str]:
    """Where the items were written (id -> file:line), for GitHub annotations: from the items a
    run of this process read; for runs it did not run (a merge), their dataset file if unchanged."""
    from evalrun.datasets import item_sources, run_item_sources

    found = list(outcomes)
    for o in found:
        if o.items is not None:
            return item_sources(o.items)
    return run_item_sources(found[0].run_dir.read_manifest()) if found else {}


def _finish(outcome: RunOutcome, json_out: bool, quiet: bool, post: PostRun | None = None,
            push_undelivered: bool = False) -> None:
    """Report a finished run (from ``merge``) and exit with its code: compared with its baseline
    and judged by its gates when ``post`` says so."""
    verdict = None
    if post is not None and outcome.status != "interrupted":
        verdict = post.finish(outcome.run_dir, outcome.summary, status=outcome.status, console=False)
    _render_run(outcome, verdict, json_out, quiet, push_undelivered)


def _render_run(outcome: RunOutcome, verdict: Verdict | None, json_out: bool, quiet: bool,
                push_undelivered: bool = False, wide: bool = False) -> None:
    """Print a run (and its verdict, reports written), tell GitHub Actions, exit with its code."""
    from evalrun import github

    if verdict is not None and not quiet and not json_out:
        from evalrun.report.console import print_console

        print_console(verdict, sys.stdout, wide=wide)
        # what the run spent (judge calls, cost, cache hits): the summary table shows it without a verdict
        from evalrun.report._terminal import safe_text
        from evalrun.report._width import table_console
        from evalrun.report.run_table import usage_lines

        console = table_console(sys.stdout)
        for line in usage_lines(outcome.summary, (r for it in verdict.comparison.items for r in it.candidate)):
            console.print(safe_text(line))
    if github.active():
        shown = verdict
        if shown is None and outcome.status != "interrupted":
            from evalrun.postrun import plain_verdict

            # no gates, baseline or --report: the job summary still gets the run's report
            shown = plain_verdict(outcome.run_dir, outcome.summary, outcome.status)
        github.publish_run(outcome.run_dir, outcome.summary, outcome.status, shown, _item_sources([outcome]))
    if verdict is None:
        _render_summary(outcome.summary, json_out, quiet)
    elif json_out:
        _render_summary({**outcome.summary, "verdict": verdict.brief()}, True, quiet)
    if verdict is not None and not quiet:
        for fmt, path in verdict.written:
            typer.echo(f"{fmt} report: {path}", err=True)
    if outcome.status == "failed":
        # why the exit code is 3, whatever --quiet or --json say (it goes to stderr)
        typer.echo(_failed_line(outcome), err=True)
    elif not quiet and not json_out:
        if outcome.status == "interrupted":
            typer.echo(f"interrupted: resume with  evalrun run --resume {outcome.run_dir.id}", err=True)
        else:
            typer.echo(f"run saved in {outcome.run_dir.path}", err=True)
    raise typer.Exit(_with_push(verdict.exit_code if verdict is not None else outcome.exit_code, push_undelivered))


def _failed_line(outcome: RunOutcome) -> str:
    from evalrun.report._terminal import visible

    why = outcome.summary.get("failure") or f"too many target errors ({outcome.summary.get('errors')})"
    return f"run failed: {visible(str(why))}; see {outcome.run_dir.path}"


def _render_summary(summary: Mapping[str, Any], json_out: bool, quiet: bool) -> None:
    if json_out:
        from evalrun._json import json_pretty

        sys.stdout.write(json_pretty(summary))
    elif not quiet:
        from evalrun.report.run_table import print_run_summary

        print_run_summary(summary)


@app.command()
def merge(
    runs: Annotated[list[str], typer.Argument(metavar="RUN", help="The shard runs: run ids or run directories.")],
    output_dir: HomeOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No table.")] = False,
    json_out: SummaryJsonOpt = False,
    push: PushOpt = None,
    push_required: PushRequiredOpt = False,
    baseline: BaselineOpt = None,
    report: ReportOpt = None,
) -> None:
    """Merge shard runs (evalrun run --shard i/n) into one run, compared, gated and reported like evalrun run."""
    _check_push(push)
    if push_required:
        push = "langfuse"
    from evalrun.engine import RunOutcome
    from evalrun.merge import load_shards, write_merged
    from evalrun.postrun import prepare_from_manifest
    from evalrun.variants import find_group

    groups = [find_group(r, output_dir) for r in runs]
    if any(g is not None for g in groups):
        _merge_groups(groups, runs, output_dir, baseline, report, push is not None, json_out, quiet, push_required)

    shards = load_shards(runs, output_dir)
    # as for run: gates, baseline and --report are checked before anything is written
    prepared = prepare_from_manifest(shards[0].manifest, baseline_ref=baseline, reports=report, home=output_dir)
    post = prepared if (prepared.gates or prepared.baseline or prepared.reports or prepared.notes) else None
    run_dir, summary = write_merged(shards, output_dir)
    outcome = RunOutcome(run_dir, summary, summary["status"])
    undelivered = _push_after_run(outcome, push is not None, push_required)
    _finish(outcome, json_out, quiet, post, undelivered)


def _merge_groups(groups: list[Group | None], refs: list[str], home: Path | None, baseline: str | None,
                  report: list[str] | None, push: bool, json_out: bool, quiet: bool,
                  push_required: bool = False) -> None:
    from evalrun import variants as v

    plain = [r for g, r in zip(groups, refs, strict=True) if g is None]
    if plain:
        raise UsageError(f"cannot merge: {plain[0]} is a run, the others are variant groups; "
                         "merge the groups of one eval (evalrun run --shard i/n)")
    shard_groups = [g for g in groups if g is not None]
    if len({g.id for g in shard_groups}) < len(shard_groups):
        raise UsageError("cannot merge: a group is given twice (a variant's run id names its whole group)")
    for g in shard_groups:
        if not g.doc.get("shard"):
            raise UsageError(f"cannot merge: group {g.id} is not a shard (it ran without --shard i/n)")
    # gates, baseline and --report checked before anything is written
    v.plan_from_group(shard_groups[0], baseline_ref=baseline, reports=report, home=home)
    group, outcomes = v.merge_groups(shard_groups, home)
    plan = v.plan_from_group(group, baseline_ref=baseline, reports=report, home=home)
    undelivered = _report_pushes(v.push_group(group, outcomes, push), outcomes, push_required)
    _finish_group(group, plan, outcomes, json_out, quiet, undelivered)


@app.command()
def init(
    folder: Annotated[Path, typer.Argument(help="The project folder (default: here).")] = Path("."),
    github: Annotated[bool, typer.Option("--github", help="Also write .github/workflows/evalrun.yml.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite files that exist.")] = False,
) -> None:
    """Write a starter eval suite: eval file, dataset, target stub, baseline path, .gitignore line."""
    from evalrun.scaffold import EVAL_FILE
    from evalrun.scaffold import init as scaffold

    written = scaffold(folder, github=github, force=force)
    where = "" if folder == Path(".") else f"cd {folder} && "
    typer.echo("wrote " + ", ".join(written) + "\n"
               f"next: {where}evalrun run                 # runs {EVAL_FILE}: every gate passes\n"
               "      evalrun baseline set latest  # accept it: evals/baseline.json (commit it)\n"
               "      evalrun run                 # compares with the accepted run; exit 1 when a gate fails")


@app.command("runs")
def runs_cmd(output_dir: HomeOpt = None,
             json_out: Annotated[bool, typer.Option("--json", help="As JSON.")] = False) -> None:
    """List runs, oldest first."""
    from rich.table import Table

    from evalrun.errors import UsageError
    from evalrun.report._terminal import safe_text
    from evalrun.report._width import table_console
    from evalrun.store import list_runs, warn_damaged

    rows = []
    for r in list_runs(output_dir):
        m = r.read_manifest()
        try:
            s = r.read_summary() or {}
        except UsageError as e:  # listed all the same: its manifest says what it is
            warn_damaged(r, e)
            s = {}
        rows.append({"run_id": r.id, "eval": m.get("eval"), "status": m.get("status"),
                     "started_at": m.get("started_at"), "records": s.get("records"),
                     "errors": s.get("errors"), "path": str(r.path)})
    if json_out:
        from evalrun._json import json_pretty

        sys.stdout.write(json_pretty(rows))
        return
    if not rows:
        typer.echo("no runs yet", err=True)
        return
    t = Table()
    for col in ("run_id", "eval", "status", "started_at", "records", "errors"):
        t.add_column(col)
    for row in rows:
        t.add_row(*(safe_text(str(row[c]) if row[c] is not None else "") for c in ("run_id", "eval", "status",
                                                                                   "started_at", "records", "errors")))
    table_console().print(t)


@app.command()
def show(run_ref: Annotated[str, typer.Argument(metavar="RUN", help="Run id, run directory or 'latest'.")],
         output_dir: HomeOpt = None,
         json_out: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
         suggest_thresholds: Annotated[bool, typer.Option(
             "--suggest-thresholds",
             help="For each scorer with values between 0 and 1: their distribution, and the threshold "
                  "that best separates the items labelled right from wrong.")] = False,
         labels: Annotated[str, typer.Option(
             "--labels", metavar="metadata.KEY",
             help="Where each item's human label is (right/wrong, true/false, pass/fail, 1/0).")
         ] = "metadata.human_label") -> None:
    """Print a run's summary (or, with --suggest-thresholds, where to put its thresholds)."""
    from evalrun.store import resolve_run

    rd = resolve_run(run_ref, output_dir)
    if suggest_thresholds:
        from evalrun import thresholds

        try:
            found = thresholds.suggest(rd.records(), labels)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if json_out:
            from evalrun._json import json_pretty

            sys.stdout.write(json_pretty([s.to_dict() for s in found]))
        else:
            sys.stdout.write(thresholds.render(found, labels))
        return
    summary = rd.read_summary()
    if summary is None:
        raise UsageError(f"run {rd.id} has no summary yet (status {rd.read_manifest().get('status')}); "
                         f"resume it with  evalrun run --resume {rd.id}")
    _render_summary(summary, json_out, False)


@app.command("compare")
def compare_cmd(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="Run id, run directory or 'latest'.")],
    baseline_ref: Annotated[str | None, typer.Argument(
        metavar="[BASELINE]", help="Baseline REF (default: the accepted baseline, else the previous run).")] = None,
    report: ReportOpt = None,
    output_dir: HomeOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the verdict as JSON on stdout.")] = False,
    slice: SliceOpt = None,
    wide: WideOpt = False,
) -> None:
    """Compare a run with a baseline and judge its gates (exit 1 when a gate fails)."""
    from evalrun import api

    verdict = api.compare(run_ref, baseline_ref, home=output_dir, reports=report, slices=slice)
    run_id = verdict.comparison.run.get("run_id")
    if (verdict.comparison.baseline_info or {}).get("run_id") == run_id:
        typer.echo(f"note: comparing run {run_id} with itself", err=True)
    if not json_out:
        from evalrun.report.console import print_console

        print_console(verdict, sys.stdout, wide=wide)
    if json_out:
        from evalrun._json import json_pretty

        sys.stdout.write(json_pretty(verdict.brief()))
    else:
        for fmt, path in verdict.written:
            typer.echo(f"{fmt} report: {path}", err=True)
    # comparing a saved run judges its gates only: how that run ended is its own exit code
    raise typer.Exit(ExitCode.of_run("finished", verdict.passed, verdict.incomplete))


@app.command("plan")
def plan_cmd(
    run_ref: Annotated[str, typer.Argument(metavar="[RUN]", help="A previous run (id, directory, 'latest').")] = "latest",
    baseline_ref: Annotated[str | None, typer.Argument(
        metavar="[BASELINE]", help="What it was compared with (default: the accepted baseline, else the previous run)."
    )] = None,
    drop: Annotated[float, typer.Option("--drop", help="The true drop to catch, as a fraction (0.05: 5 points).",
                                        min=0.0, max=1.0)] = 0.05,
    margin: Annotated[float, typer.Option("--margin", help="The gate's allowed drop (baseline - MARGIN).",
                                          min=0.0, max=1.0)] = 0.0,
    policy: Annotated[str | None, typer.Option("--policy", help="significant, point or strict (default: the "
                                                                "run's gate_policy).")] = None,
    power: Annotated[float, typer.Option("--power", help="How often the gate should catch the drop.",
                                         min=0.5, max=0.99)] = 0.80,
    output_dir: HomeOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """How many items a relative gate needs to catch a given drop, from a previous run's churn or
    spread against its baseline (per scorer: pass rate, and the mean of other scores)."""
    from evalrun import stats
    from evalrun.gates import check_policy
    from evalrun.postrun import prepare_from_manifest
    from evalrun.store import resolve_run

    rd = resolve_run(run_ref, output_dir)
    manifest = rd.read_manifest()
    post = prepare_from_manifest(manifest, baseline_ref=baseline_ref, home=output_dir, default_latest_before=rd.id)
    if post.baseline is None:
        raise UsageError(f"no baseline to measure run {rd.id}'s churn against: pass one (a run id, 'latest', a "
                         "baseline file) or accept a run with  evalrun baseline set RUN")
    pol = check_policy(policy or post.policy)
    cmp = post.judge(rd, context=False).comparison
    rows: list[dict[str, Any]] = []
    for name, sc in cmp.scorers.items():
        stat = "pass_rate" if sc.candidate.get("pass_rate") is not None else "mean"
        paired = sc.paired(stat)
        if paired is None or paired.diff.n < 2:
            continue
        d = paired.diff
        rows.append({"scorer": name, "stat": stat, "n": d.n, "clusters": d.clusters,
                     "churn": None if math.isnan(d.discordant) else round(d.discordant, 6),
                     "detectable_drop_now": _rounded(stats.detectable_drop(d, -margin, pol, power)),
                     "items_needed": _rounded(stats.items_needed(d, drop, -margin, pol, power))})
    if json_out:
        from evalrun._json import json_pretty

        sys.stdout.write(json_pretty({"run_id": rd.id, "baseline": cmp.baseline_info, "drop": drop,
                                      "margin": margin, "policy": pol, "power": power, "scorers": rows}))
        return
    typer.echo(f"plan: a gate `>= baseline - {margin:g}` under {pol} catching a true drop of {drop:g} "
               f"{power:.0%} of the time, from run {rd.id} against {cmp.baseline_info and cmp.baseline_info.get('run_id')}")
    for r in rows:
        need = r["items_needed"]
        now = r["detectable_drop_now"]
        typer.echo(f"  {r['scorer']}.{r['stat']}: {r['n']} items now"
                   + (f" ({r['clusters']} clusters)" if r["clusters"] is not None else "")
                   + (f", churn {100 * r['churn']:.1f}%" if r["churn"] is not None else "")
                   + (f"; catches {now:.3g} now" if now is not None else "; no basis for a detectable drop")
                   + (f"; needs about {int(need)} items" if need is not None else
                      "; no number of items catches it (within the margin, or no spread to measure)"))


def _rounded(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 6)


@app.command("history")
def history_cmd(
    config: Annotated[str | None, typer.Argument(help="Eval file (default: evalrun.yaml).")] = None,
    last: Annotated[int, typer.Option("--last", help="Show the newest N runs.", min=1)] = 20,
    baseline: Annotated[list[Path] | None, typer.Option(
        "--baseline", metavar="DIR", help="Also read the history.jsonl in this folder (a downloaded baseline "
        "artifact); repeatable.")] = None,
    output_dir: HomeOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
) -> None:
    """The eval's finished runs, oldest first: per scorer the mean and its 95% interval."""
    from evalrun.baseline import accepted_path
    from evalrun.config import load_config
    from evalrun.history import collect
    from evalrun.report.history import print_history

    loaded = load_config(config)
    cfg = loaded.config
    for p in baseline or []:
        if not p.exists():
            raise UsageError(f"--baseline {p}: no such file or folder")
    accepted = accepted_path(cfg.name, output_dir, cfg.baseline, loaded.base_dir)
    entries = collect(cfg.name, output_dir, accepted=accepted, extra=list(baseline or []))[-last:]
    if json_out:
        from evalrun._json import json_pretty

        sys.stdout.write(json_pretty({"eval": cfg.name, "runs": entries}))
        return
    if not entries:
        typer.echo(f"no finished runs of eval '{cfg.name}' yet", err=True)
        return
    print_history(cfg.name, entries)


baseline_app = typer.Typer(help="The accepted baseline a run is compared with by default.", no_args_is_help=True)
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("set")
def baseline_set(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="Run id, run directory or 'latest'.")],
    path: Annotated[Path | None, typer.Option("--path", help="Write here instead of the eval file's "
                                              "'baseline:' or .evalrun/baseline/<eval>.json.")] = None,
    output_dir: HomeOpt = None,
) -> None:
    """Accept a run as its eval's baseline (a small JSON file you can commit or keep as a CI artifact)."""
    from evalrun.baseline import set_baseline

    dest, doc = set_baseline(run_ref, output_dir, path)
    typer.echo(f"baseline of eval '{doc['eval']}' is now run {doc['run_id']} "
               f"({len(doc['records'])} records): {dest}", err=True)


@baseline_app.command("show")
def baseline_show(
    eval_file: Annotated[str | None, typer.Argument(help="Eval file (default: evalrun.yaml).")] = None,
    output_dir: HomeOpt = None,
) -> None:
    """Print where the eval's accepted baseline is and which run it holds."""
    from evalrun.baseline import accepted_path, load_accepted
    from evalrun.config import load_config

    loaded = load_config(eval_file)
    p = accepted_path(loaded.config.name, output_dir, loaded.config.baseline, loaded.base_dir)
    if not p.is_file():
        raise UsageError(f"no accepted baseline for eval '{loaded.config.name}' (looked for {p}); "
                         "accept a run with: evalrun baseline set RUN")
    bl = load_accepted(p)
    typer.echo(f"{p}: eval '{bl.eval}', run {bl.run_id}, {len(bl.records)} records")


@app.command("push")
def push_cmd(
    run_ref: Annotated[str, typer.Argument(metavar="RUN", help="Run id, run directory or 'latest'.")],
    output_dir: HomeOpt = None,
    run_name: Annotated[str | None, typer.Option(help="Experiment run name (first push only).")] = None,
    description: Annotated[str | None, typer.Option(help="Run description (first push only).")] = None,
    dataset_name: Annotated[str | None, typer.Option(help="Link to this Langfuse dataset (first push only).")] = None,
    timeout: Annotated[float | None, typer.Option(help="Give up after this many seconds (default: no limit).",
                                                  min=1)] = None,
) -> None:
    """Send a run to Langfuse, or what a previous push could not deliver (exit 3 if something is left)."""
    from evalrun.langfuse.push import push_run
    from evalrun.store import resolve_run

    rd = resolve_run(run_ref, output_dir)
    result = push_run(rd, overrides={"run_name": run_name, "description": description,
                                     "dataset_name": dataset_name}, budget=timeout)
    line = result.line(rd.id)
    typer.echo(line, err=True)
    if not result.delivered:
        from evalrun import github

        if github.active():
            github.emit_command(github.annotation("warning", line, title="Langfuse push not delivered"), sys.stdout)
    raise typer.Exit(result.exit_code)


datasets_app = typer.Typer(help="Langfuse datasets: push a golden file, pull one back.", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")


@datasets_app.command("push")
def datasets_push(
    file: Annotated[str, typer.Argument(help="Dataset file (.yaml, .jsonl, .csv).")],
    name: Annotated[str | None, typer.Option("--name", help="Langfuse dataset name (default: the file's name).")] = None,
) -> None:
    """Upsert the file's items into a Langfuse dataset by item id (pushing again changes nothing)."""
    from evalrun.langfuse.datasets import push_dataset

    c = push_dataset(file, name)
    archived = f", {c['archived']} archived in Langfuse (left archived)" if c.get("archived") else ""
    typer.echo(f"langfuse://{c['dataset']}: {c['created']} created, {c['updated']} updated, "
               f"{c['unchanged']} unchanged{archived}", err=True)


@datasets_app.command("pull")
def datasets_pull(
    name: Annotated[str, typer.Argument(help="Langfuse dataset name.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="YAML file to write.")],
    version: Annotated[str | None, typer.Option(help="The dataset as of this ISO timestamp.")] = None,
    archived: Annotated[bool, typer.Option("--archived", help=(
        "Keep ARCHIVED items too. Langfuse's API does not list them: those already in the output "
        "file are re-read by id and kept while Langfuse says ARCHIVED."))] = False,
) -> None:
    """Export a Langfuse dataset as a YAML golden file."""
    from evalrun.langfuse.datasets import pull_dataset

    n = pull_dataset(name, output, version, include_archived=archived)
    typer.echo(f"pulled {n} items of langfuse://{name} into {output}", err=True)



@datasets_app.command("harvest")
def datasets_harvest(
    source: Annotated[str, typer.Argument(help="langfuse (the project in LANGFUSE_* variables), a .jsonl trace "
                                          "export, or an OTLP .json file.")],
    out: Annotated[Path, typer.Option("--out", help="The golden file to append to (.yaml or .jsonl).")],
    name: Annotated[str | None, typer.Option("--name", help="Trace name.")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="A tag every trace must have (repeatable).")] = None,
    environment: Annotated[str | None, typer.Option("--environment")] = None,
    release: Annotated[str | None, typer.Option("--release")] = None,
    version: Annotated[str | None, typer.Option("--version")] = None,
    user: Annotated[str | None, typer.Option("--user")] = None,
    session: Annotated[str | None, typer.Option("--session")] = None,
    since: Annotated[str | None, typer.Option("--since", help="ISO time: traces at or after it.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="ISO time: traces before it.")] = None,
    score: Annotated[list[str] | None, typer.Option("--score", help="A score condition, e.g. 'user_feedback<0' "
                                                    "(repeatable).")] = None,
    errors: Annotated[bool, typer.Option("--errors", help="Only traces that ended in an error.")] = False,
    min_latency: Annotated[float | None, typer.Option("--min-latency", help="Seconds.")] = None,
    min_cost: Annotated[float | None, typer.Option("--min-cost", help="USD.")] = None,
    correction: Annotated[str | None, typer.Option("--correction", help="A score whose comment is a human's "
                                                   "corrected answer: the expected output.")] = None,
    keep_metadata: Annotated[list[str] | None, typer.Option("--keep-metadata", help="Trace metadata key to keep "
                                                            "(repeatable).")] = None,
    add_tag: Annotated[list[str] | None, typer.Option("--add-tag", help="Tag for every new item.")] = None,
    sample: Annotated[int | None, typer.Option("--sample", help="At most N new items.", min=1)] = None,
    stratify: Annotated[str | None, typer.Option("--stratify", help="metadata.KEY to sample across.")] = None,
    diverse: Annotated[bool, typer.Option("--diverse", help="Sample across the inputs' embedding space.")] = False,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    near_dup: Annotated[float, typer.Option("--near-dup", help="Cosine at or above which two inputs are one "
                                            "(0 turns it off).", min=0, max=1)] = 0.95,
    redact: Annotated[str | None, typer.Option("--redact", help="Built-in detectors, comma-separated (default: "
                                               "all).")] = None,
    pattern: Annotated[list[str] | None, typer.Option("--pattern", help="NAME=REGEX to redact too "
                                                      "(repeatable).")] = None,
    names: Annotated[bool, typer.Option("--names", help="Redact person names (needs presidio-analyzer).")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count each step; write nothing.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Turn production traces into reviewable, redacted, de-duplicated golden items."""
    from evalrun.production import harvest as hv
    from evalrun.production.redact import RedactionFailed, Redactor
    from evalrun.production.traces import read_jsonl, read_langfuse, read_otlp

    if out.suffix.lower() not in (".yaml", ".yml", ".jsonl"):
        raise UsageError(f"--out {out}: a .yaml or .jsonl golden file")
    if stratify is not None and not stratify.startswith("metadata."):
        raise UsageError(f"--stratify {stratify}: a metadata.KEY")
    custom = {}
    for p in pattern or []:
        key, sep, rx = p.partition("=")
        if not sep or not key or not rx:
            raise UsageError(f"--pattern {p!r}: write NAME=REGEX")
        custom[key] = rx
    try:
        redactor = Redactor.build(redact.split(",") if redact else None, custom, names)
    except (ValueError, RedactionFailed) as e:
        raise UsageError(f"--redact/--pattern: {e}") from None
    opts = hv.Options(out=out, name=name, tags=tag or [], environment=environment, release=release,
                      version=version, user=user, session=session,
                      since=hv.parse_time(since, "--since") if since else None,
                      until=hv.parse_time(until, "--until") if until else None,
                      scores=[hv.parse_score(s) for s in score or []], errors=errors, min_latency=min_latency,
                      min_cost=min_cost, correction=correction, keep_metadata=keep_metadata or [],
                      add_tags=add_tag or [], sample=sample, stratify=stratify, diverse=diverse, seed=seed,
                      near_dup=near_dup or None, redactor=redactor, dry_run=dry_run)
    existing = hv.read_existing(out)
    if source == "langfuse":
        score_names = sorted({n for n, _, _ in opts.scores} | ({correction} if correction else set()))
        traces = read_langfuse(opts.api_query(), score_names,
                               progress=lambda path, page, pages: typer.echo(
                                   f"harvest: {path} page {page}/{pages or '?'}", err=True))
    else:
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"{source}: no such file (the source is langfuse, a .jsonl export or an OTLP .json)")
        traces = read_jsonl(path) if path.suffix.lower() in (".jsonl", ".ndjson") else read_otlp(path)
    report = hv.harvest(traces, opts, existing)
    if json_out:
        from evalrun._json import json_pretty

        sys.stdout.write(json_pretty(report))
        return
    c = report["source_counts"]
    typer.echo(f"read {c['read']} traces; {c['matched']} matched the filter ({opts.filter_text()})")
    for label, n in sorted(c["filtered_out"].items()):
        typer.echo(f"  dropped by {label}: {n}")
    red = c["redaction"]
    typer.echo(f"redacted: {', '.join(f'{k} {v}' for k, v in red['by_kind'].items()) or 'nothing found'}"
               f"; items dropped because redaction failed: {red['dropped']}")
    typer.echo(f"duplicates: {c['duplicates_exact']} exact, {c['duplicates_near']} near; "
               f"already in {out.name}: {c['already_in_file']}")
    verb = "would write" if dry_run else "wrote"
    typer.echo(f"{verb} {report['new_items']} new items to {out} ({report['items_in_file']} in all)")

prompts_app = typer.Typer(help="Langfuse prompts: push a local prompt file as a new version, pull one back.",
                          no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")


@prompts_app.command("push")
def prompts_push(
    file: Annotated[str, typer.Argument(help="Local prompt file (messages:, params:, model:).")],
    name: Annotated[str | None, typer.Option("--name", help="Langfuse prompt name (default: the file's "
                                                            "name: or its stem).")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="Label the new version; repeatable.")] = None,
    message: Annotated[str | None, typer.Option("--message", "-m", help="Commit message.")] = None,
) -> None:
    """Create a new version of a Langfuse prompt from a local prompt file."""
    from evalrun.langfuse.prompts import push_prompt

    got = push_prompt(file, name, label or [], message)
    labels = f" ({', '.join(got['labels'])})" if got.get("labels") else ""
    typer.echo(f"langfuse://{got['name']}@{got['version']}{labels}: created from {file}", err=True)


@prompts_app.command("pull")
def prompts_pull(
    ref: Annotated[str, typer.Argument(help="langfuse://name@label or langfuse://name@version (or just name).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Prompt file to write (YAML).")],
) -> None:
    """Write a Langfuse prompt version into a local prompt file."""
    from evalrun.langfuse.prompts import SCHEME, pull_prompt
    from evalrun.prompts import describe
    from evalrun.report._terminal import visible

    p = pull_prompt(ref if ref.startswith(SCHEME) else SCHEME + ref, output)
    typer.echo(visible(f"pulled prompt {describe(p.info)} into {output}"), err=True)


scorers_app = typer.Typer(help="Scorer types and the built-in LLM-judge rubrics.", no_args_is_help=True)
app.add_typer(scorers_app, name="scorers")


@scorers_app.command("list")
def scorers_list(json_out: Annotated[bool, typer.Option("--json", help="As JSON.")] = False) -> None:
    """List scorer types and built-in judge rubrics (rubric: NAME in an llm_judge scorer)."""
    from evalrun.scoring.base import scorer_types
    from evalrun.scoring.judge.rubric import describe_builtins

    rubrics = describe_builtins()
    if json_out:
        from evalrun._json import json_pretty

        sys.stdout.write(json_pretty({"types": list(scorer_types()), "rubrics": rubrics}))
        return
    typer.echo("scorer types: " + ", ".join(scorer_types()))
    typer.echo("\nbuilt-in rubrics for llm_judge (or rubric: path/to/your.yaml):")
    w1 = max((len(r["name"]) for r in rubrics), default=0)
    w2 = max((len(r["grading"]) for r in rubrics), default=0)
    for r in rubrics:
        typer.echo(f"  {r['name']:<{w1}}  {r['grading']:<{w2}}  {r['description']}")


judge_app = typer.Typer(help="LLM judges: calibrate one against human labels.", no_args_is_help=True)
app.add_typer(judge_app, name="judge")


@judge_app.command("calibrate")
def judge_calibrate(
    labels: Annotated[Path, typer.Option("--labels", help="Human labels: .jsonl or .csv rows with item_id and label "
                                         "(and output, else --run's).")],
    config: Annotated[str | None, typer.Argument(help="Eval file (default: evalrun.yaml).")] = None,
    scorer: Annotated[str | None, typer.Option("--scorer", help="The llm_judge scorer's name (default: the only "
                                               "one).")] = None,
    run_ref: Annotated[str | None, typer.Option("--run", help="Judge this run's outputs for rows without one.")] = None,
    repeat: Annotated[int, typer.Option("--repeat", help="Ask the judge N times: self-consistency.", min=1,
                                        max=10)] = 1,
    probe: Annotated[list[str] | None, typer.Option("--probe", help="Bias probe: length (repeatable; position is "
                                                   "always measured for pairwise judges).")] = None,
    by: Annotated[list[str] | None, typer.Option("--by", help="Agreement by slice: tags or metadata.KEY.")] = None,
    no_write: Annotated[bool, typer.Option("--no-write", help="Report only; write no certificate.")] = False,
    output_dir: HomeOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="The report as JSON.")] = False,
) -> None:
    """Measure how often a judge agrees with human labels (Cohen's kappa with its interval, TPR/TNR,
    bias probes) and write its certificate."""
    from evalrun.config import load_config, normalize_key
    from evalrun.report._terminal import visible
    from evalrun.scoring.judge.calibrate import render_text, run_calibration

    for p in probe or []:
        if p not in ("length", "position"):
            raise UsageError(f"--probe {p}: the probes are length and position")
    for k in by or []:
        if normalize_key(k) is None:
            raise UsageError(f"--by {k}: a slice key is tags or metadata.KEY")
    loaded = load_config(config)
    judges = [sc.name or sc.type for sc in loaded.config.scorers if sc.type == "llm_judge"]
    if scorer is None:
        if len(judges) != 1:
            raise UsageError(f"{loaded.path} has {len(judges)} llm_judge scorers: name one with --scorer"
                             + (f" ({', '.join(judges)})" if judges else ""))
        scorer = judges[0]
    result = run_calibration(loaded, scorer, labels, home=output_dir, run_ref=run_ref, repeat=repeat,
                             probes=tuple(probe or ()), by=[normalize_key(k) or k for k in by or []],
                             write=not no_write)
    if json_out:
        from evalrun._json import json_pretty

        sys.stdout.write(json_pretty(result.report))
    else:
        for line in render_text(result.report):
            typer.echo(visible(line))
    if not result.report.get("agreement"):
        raise typer.Exit(ExitCode.RUN_FAILED)


def _fix_optional_resume(argv: list[str]) -> list[str]:
    """Let ``--resume`` stand alone (meaning the latest run), as click options cannot."""
    out = list(argv)
    for i, a in enumerate(out):
        if a == "--resume":
            nxt = out[i + 1] if i + 1 < len(out) else None
            if nxt is None or nxt.startswith("-"):
                out.insert(i + 1, "latest")
            break
    return out


#: how long the exit handlers of the process (a telemetry SDK's flush) may take when evalrun
#: exits past threads it does not wait for
EXIT_HANDLERS_SECONDS = 5.0


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    # everything is saved and printed. Python would now wait for every non-daemon thread still
    # running (one a target or a telemetry SDK started, a sync call stuck past its timeout), and
    # a CI job would hang until its own timeout: exit without them, once the exit handlers (an
    # SDK's flush) have run, in a bounded time
    if _held_by_threads():
        import atexit

        handlers = threading.Thread(target=atexit._run_exitfuncs, name="evalrun-atexit", daemon=True)
        handlers.start()
        handlers.join(EXIT_HANDLERS_SECONDS)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


#: the embedding scorer's model thread lives as long as the process, idle at exit: Python's
#: exit ends it by itself (it tells executors to stop before it joins their threads)
_OWN_IDLE_POOLS = ("evalrun-embed",)


def _held_by_threads(settle: float = 0.2) -> bool:
    """Whether non-daemon threads other than the embedding model's are still running after
    ``settle`` seconds (a pool shut down a moment ago ends its idle threads by then; one stuck
    in user code, a custom scorer's, does not)."""
    import time

    main_thread = threading.main_thread()
    others = [t for t in threading.enumerate() if t is not main_thread and not t.daemon
              and not t.name.startswith(_OWN_IDLE_POOLS)]
    deadline = time.monotonic() + settle
    for t in others:
        t.join(max(0.0, deadline - time.monotonic()))
    return any(t.is_alive() for t in others)


def main(argv: list[str] | None = None) -> None:
    _exit(invoke(sys.argv[1:] if argv is None else argv))


def invoke(argv: list[str]) -> int:
    """The command line on ``argv``, in this process: its output on sys.stdout/sys.stderr, its
    exit code returned (``main`` exits with it)."""
    global _debug
    _debug = False  # the root callback sets it; a usage error may come before it runs
    argv = _fix_optional_resume(argv)
    store = sys.modules.get("evalrun.store")
    if store is not None:  # (an earlier command in this process: its warnings were its own)
        store.forget_warnings()
    from evalrun.github import guard_streams

    # under GitHub Actions no text evalrun prints (model output, item ids) can be a workflow command
    guard_streams()
    try:
        # without standalone mode click returns the code of a typer.Exit instead of exiting
        rc = app(args=argv, prog_name="evalrun", standalone_mode=False)
    except UsageError as e:
        print(f"evalrun: error: {e}", file=sys.stderr)
        return ExitCode.USAGE
    except EvalrunError as e:
        print(f"evalrun: error: {e}", file=sys.stderr)
        return e.exit_code
    except typer.Exit as e:
        return e.exit_code
    except KeyboardInterrupt:
        print("evalrun: interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except SystemExit:
        raise
    except BaseException as e:  # GeneratorExit or another BaseException that got this far: no traceback
        import click

        # recent typer releases vendor click (typer._click); older ones raise click's own
        vendored = getattr(getattr(getattr(typer, "_click", None), "exceptions", None), "ClickException", None)
        if isinstance(e, click.exceptions.Abort | typer.Abort):
            return ExitCode.INTERRUPTED
        help_ctx = getattr(e, "ctx", None) if type(e).__name__ == "NoArgsIsHelpError" else None
        if help_ctx is not None:
            # `evalrun` or a command group with nothing after it: its help, as --help prints it
            print(help_ctx.get_help(), file=sys.stderr)
            return ExitCode.USAGE
        if isinstance(e, click.ClickException) or (vendored is not None and isinstance(e, vendored)):
            # one line, like every other usage error (click prints usage + hint + error)
            ctx = getattr(e, "ctx", None)
            where = f"{ctx.command_path}: " if ctx is not None and getattr(ctx, "command_path", None) else ""
            msg = " ".join(e.format_message().split())
            print(f"evalrun: error: {where}{msg} (see --help)", file=sys.stderr)
            return ExitCode.USAGE
        if _debug or os.environ.get("EVALRUN_DEBUG"):
            raise
        print(f"evalrun: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
              file=sys.stderr)
        return ExitCode.RUN_FAILED
    return rc if isinstance(rc, int) else 0
