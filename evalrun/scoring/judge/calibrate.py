"""``evalrun judge calibrate``: how often does this judge agree with a human?

Runs one ``llm_judge`` scorer of an eval file over outputs that humans labelled, and measures:

- agreement: Cohen's kappa with its interval (quadratic-weighted for a numeric scale, over the
  rubric's choices when the labels name them, else on pass/fail), raw agreement and the base
  rate beside it, TPR/TNR/precision and the confusion matrix of pass/fail, and for scales
  Spearman's rank correlation;
- self-consistency (``repeat >= 2``): the judge asked again on the same items (new cache keys):
  Fleiss' kappa over its repetitions and the share of items with one verdict throughout;
- bias probes: position (pairwise rubrics are always asked in both orders: the share of
  order-inconsistent pairs, and which position the inconsistent ones favour), length (the same
  output padded with neutral text: the change in score and the share of verdicts that flip),
  and agreement by slice;

and writes the certificate (:mod:`.certificate`) bound to the judge's fingerprint.

The labels file (JSONL or CSV, one row per labelled output) has ``item_id`` and ``label``, and
optionally ``output`` (else the output of ``--run``'s record for that item), ``baseline_output``
(pairwise: the other answer), and ``input`` / ``expected_output`` / ``metadata`` (else the eval
dataset's item).
"""

from __future__ import annotations

import asyncio
import csv
import io
import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evalrun import _json
from evalrun.agreement import binary_agreement, cohen_kappa, fleiss_kappa, proportion, spearman
from evalrun.errors import RunFailed, UsageError
from evalrun.records import Record, Score, scrub_text
from evalrun.scoring.judge import certificate
from evalrun.selectors import values_of
from evalrun.stats import mean_ci
from evalrun.store import file_fingerprint

if TYPE_CHECKING:
    from evalrun.config import LoadedConfig
    from evalrun.scoring.judge.scorer import LLMJudge

LABEL_KEYS = {"item_id", "id", "label", "output", "baseline_output", "input", "expected_output", "metadata"}
PASS_WORDS = {"pass": True, "passed": True, "true": True, "yes": True, "1": True, "good": True, "correct": True,
              "fail": False, "failed": False, "false": False, "no": False, "0": False, "bad": False,
              "incorrect": False}
PAIRWISE = ("loss", "tie", "win")
#: padding for the length probe: says nothing about the answer
PADDING = ("\n\nAdditional context: the above is the complete response. It has been formatted for readability "
           "and reviewed for clarity. No further information is included in this paragraph, which exists "
           "only to separate the response from any surrounding text.")
#: judge errors above this share of the labelled items: no certificate is written
MAX_ERROR_SHARE = 0.05


@dataclass
class Label:
    item_id: str
    label: Any
    file: str
    line: int
    output: Any = None
    baseline_output: Any = None
    has_output: bool = False
    fields: dict[str, Any] = field(default_factory=dict)  # input / expected_output / metadata

    def error(self, message: str) -> UsageError:
        return UsageError(message, self.file, self.line)


def read_labels(path: Path) -> list[Label]:
    """The labelled rows of ``path`` (.jsonl or .csv); a bad row is a UsageError at its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"labels file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"labels file {path} cannot be read: {e}") from None
    file = str(path)
    rows: list[tuple[int, Any]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        try:
            for row in reader:
                rows.append((reader.line_num, {k: v for k, v in row.items() if k is not None and v != ""}))
        except csv.Error as e:
            raise UsageError(f"not valid CSV: {e}", file, reader.line_num) from None
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        for n, text_line in enumerate(text.splitlines(), 1):
            if not text_line.strip():
                continue
            try:
                rows.append((n, _json.loads(text_line)))
            except ValueError as e:
                raise UsageError(f"not valid JSON: {e}", file, n) from None
    else:
        raise UsageError(f"labels file {path}: use .jsonl or .csv")
    labels: list[Label] = []
    seen: dict[str, int] = {}
    for line, raw in rows:
        if not isinstance(raw, dict):
            raise UsageError("a labels row must be an object with item_id and label", file, line)
        unknown = [k for k in raw if k not in LABEL_KEYS]
        if unknown:
            raise UsageError(f"unknown key {str(unknown[0])[:80]!r} (labels rows take {', '.join(sorted(LABEL_KEYS))})",
                             file, line)
        item_id = raw.get("item_id", raw.get("id"))
        if item_id is None or isinstance(item_id, bool) or str(item_id).strip() == "":
            raise UsageError("row has no item_id", file, line)
        item_id = scrub_text(str(item_id))[0]
        if item_id in seen:
            raise UsageError(f"item {item_id[:80]!r} is labelled twice (first at line {seen[item_id]})", file, line)
        seen[item_id] = line
        if raw.get("label") is None or raw.get("label") == "":
            raise UsageError("row has no label", file, line)
        meta = raw.get("metadata")
        if isinstance(meta, str):  # a CSV cell
            try:
                meta = _json.loads(meta)
            except ValueError:
                raise UsageError("metadata must be a JSON object", file, line) from None
        if meta is not None and not isinstance(meta, dict):
            raise UsageError("metadata must be an object", file, line)
        fields = {k: scrub_text(raw[k])[0] for k in ("input", "expected_output") if k in raw}
        if meta is not None:
            fields["metadata"] = scrub_text(meta)[0]
        labels.append(Label(item_id, raw["label"], file, line, scrub_text(raw.get("output"))[0],
                            scrub_text(raw.get("baseline_output"))[0], "output" in raw, fields))
    if not labels:
        raise UsageError(f"labels file {path} has no rows")
    return labels


# --- what a label and a verdict mean -----------------------------------------------------------

@dataclass
class Scheme:
    """How labels and verdicts are compared: ``kind`` is "pairwise", "choices" (the labels name
    the rubric's choices), "scale" (numbers on the rubric's scale) or "binary" (pass/fail)."""

    kind: str
    categories: list[Any]
    weights: str | None = None


def _scheme(judge: LLMJudge, labels: list[Label]) -> Scheme:
    rubric = judge.rubric
    if judge.config.mode == "pairwise":
        return Scheme("pairwise", list(PAIRWISE))
    values = [lb.label for lb in labels]
    if rubric.choices and all(isinstance(v, str) and v in rubric.choices for v in values):
        return Scheme("choices", list(rubric.choices))
    if rubric.scale and all(_number(v) is not None for v in values):
        lo, hi = rubric.scale
        return Scheme("scale", list(range(lo, hi + 1)), "quadratic")
    return Scheme("binary", [False, True])


def _number(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v.strip())
    return None


def _human(scheme: Scheme, judge: LLMJudge, label: Label) -> tuple[Any, bool]:
    """(category, passed) of a human label; a label the scheme cannot read is a UsageError."""
    v = label.label
    if scheme.kind == "pairwise":
        word = str(v).strip().lower()
        if word not in PAIRWISE:
            raise label.error(f"label {str(v)[:40]!r}: a pairwise label is win, tie or loss (of the output "
                             "against baseline_output)")
        return word, word == "win"
    if scheme.kind == "choices":
        worth = (judge.rubric.choices or {})[v]
        return v, worth >= judge.threshold
    if scheme.kind == "scale":
        num = _number(v)
        lo, hi = judge.rubric.scale or (0, 1)
        if num is None or not lo <= num <= hi:
            raise label.error(f"label {str(v)[:40]!r} is not on the rubric's scale {lo}..{hi}")
        return num, judge.rubric.normalise(num) >= judge.threshold
    if isinstance(v, bool):
        return v, v
    word = str(v).strip().lower()
    if word not in PASS_WORDS:
        choices = list(judge.rubric.choices or []) or [f"{judge.rubric.scale}"]
        raise label.error(f"label {str(v)[:40]!r} is neither pass/fail (true/false, yes/no, 1/0) nor one of the "
                         f"rubric's verdicts ({', '.join(map(str, choices))})")
    return PASS_WORDS[word], PASS_WORDS[word]


def _judged(scheme: Scheme, score: Score) -> tuple[Any, bool] | None:
    """(category, passed) of a judge score, None when it errored or was skipped."""
    if score.error is not None or score.passed is None:
        return None
    verdict = (score.extra or {}).get("verdict")
    if scheme.kind == "scale":
        num = _number(verdict) if not isinstance(verdict, float) else round(verdict)
        return num, bool(score.passed)
    if scheme.kind == "binary":
        return bool(score.passed), bool(score.passed)
    return verdict, bool(score.passed)


# --- the run ------------------------------------------------------------------------------------

def _records(loaded: LoadedConfig, labels: list[Label], run_records: dict[str, Record] | None) -> list[Record]:
    from evalrun.datasets import load_dataset

    items = None
    out = []
    for lb in labels:
        base: dict[str, Any] = {}
        if not {"input"} <= lb.fields.keys() or run_records is None:
            if items is None:
                items = {it.id: it for it in load_dataset(loaded.config.dataset, loaded.base_dir).items}
            it = items.get(lb.item_id)
            if it is not None:
                base = {"input": it.input, "expected_output": it.expected_output, "metadata": it.metadata}
        rec = run_records.get(lb.item_id) if run_records is not None else None
        if rec is not None and not base:
            base = {"input": rec.input, "expected_output": rec.expected_output, "metadata": rec.metadata}
        base.update(lb.fields)
        if "input" not in base:
            raise lb.error(f"item {lb.item_id[:80]!r} is not in the eval's dataset and the row has no input")
        if lb.has_output:
            output = lb.output
        elif rec is not None and rec.error is None:
            output = rec.output
        else:
            where = "--run's records" if run_records is not None else "the row (or name a run with --run)"
            raise lb.error(f"item {lb.item_id[:80]!r} has no output to judge in {where}")
        out.append(Record(item_id=lb.item_id, trial=0, input=base["input"],
                          expected_output=base.get("expected_output"), output=output,
                          metadata=base.get("metadata") or {}))
    return out


async def _score_all(judge: LLMJudge, records: list[Record], progress: Any = None) -> list[Score]:
    scores: list[Score] = []
    size = max(1, judge.batch_size)
    for i in range(0, len(records), size):
        scores.extend(await judge.score_batch(records[i:i + size]))
        if progress is not None:
            progress(len(scores), len(records))
    return scores


@dataclass
class Calibration:
    report: dict[str, Any]
    certificate: dict[str, Any] | None
    path: Path
    written: bool = False


def _agreement(scheme: Scheme, pairs: list[tuple[tuple[Any, bool], tuple[Any, bool]]]) -> dict[str, Any]:
    """judge vs human over (judge, human) pairs of (category, passed)."""
    out: dict[str, Any] = {"scheme": scheme.kind}
    binary = binary_agreement([j[1] for j, _ in pairs], [h[1] for _, h in pairs])
    if scheme.kind == "binary":
        out["kappa"] = binary.kappa.to_dict()
    else:
        out["kappa"] = cohen_kappa([j[0] for j, _ in pairs], [h[0] for _, h in pairs], labels=scheme.categories,
                                   weights=scheme.weights).to_dict()  # type: ignore[arg-type]  # "quadratic" or None
        out["confusion_by_category"] = {
            str(h): {str(j): c for (j, hh), c in sorted(Counter((j[0], h[0]) for j, h in pairs).items(),
                                                         key=lambda kv: str(kv[0])) if hh == h}
            for h in scheme.categories if any(hp[0] == h for _, hp in pairs)}
    out["pass_fail"] = binary.to_dict()
    if scheme.kind == "scale":
        rho = spearman([float(j[0]) for j, _ in pairs], [float(h[0]) for _, h in pairs])
        out["spearman"] = None if rho is None else round(rho, 4)
    return out


async def calibrate(loaded: LoadedConfig, scorer_name: str, labels_path: Path, *, home: Path | None = None,
                    run_ref: str | None = None, repeat: int = 1, probes: tuple[str, ...] = (),
                    by: list[str] | None = None, write: bool = True, progress: Any = None) -> Calibration:
    from evalrun.engine import build_scorers
    from evalrun.scoring.base import ScorerContext
    from evalrun.scoring.judge.scorer import LLMJudge
    from evalrun.store import open_cache, resolve_run

    names = [sc.name or sc.type for sc in loaded.config.scorers]
    if scorer_name not in names:
        raise UsageError(f"no scorer named {scorer_name!r} in {loaded.path} (scorers: {', '.join(names)})")
    labels = read_labels(labels_path)
    run_records = None
    if run_ref is not None:
        run_dir = resolve_run(run_ref, home)
        run_records = {r.item_id: r for r in run_dir.records() if r.trial == 0}
    records = _records(loaded, labels, run_records)
    cache = open_cache(home)
    try:
        index = names.index(scorer_name)
        baseline = {(lb.item_id, 0): lb.baseline_output for lb in labels if lb.baseline_output is not None}
        ctx = ScorerContext(base_dir=loaded.base_dir, cache=cache, baseline_outputs=baseline)
        scorer = build_scorers(loaded, ctx)[index]
        if not isinstance(scorer, LLMJudge):
            raise UsageError(f"scorer {scorer_name!r} is a {scorer.type} scorer; calibrate takes an llm_judge")
        judge = scorer
        judge.certify = False
        await judge.setup()
        try:
            return await _calibrate(judge, loaded, labels, labels_path, records, repeat, probes, by or [], write,
                                    progress)
        finally:
            await judge.close()
    finally:
        cache.close()


async def _calibrate(judge: LLMJudge, loaded: LoadedConfig, labels: list[Label], labels_path: Path,
                     records: list[Record], repeat: int, probes: tuple[str, ...], by: list[str], write: bool,
                     progress: Any) -> Calibration:
    scheme = _scheme(judge, labels)
    if scheme.kind == "pairwise" and any(lb.baseline_output is None for lb in labels):
        lb = next(lb for lb in labels if lb.baseline_output is None)
        raise lb.error("a pairwise judge compares two answers: this row has no baseline_output")
    humans = [_human(scheme, judge, lb) for lb in labels]
    runs: list[list[Score]] = []
    for r in range(repeat):
        judge.sample_offset = r * judge.config.samples
        runs.append(await _score_all(judge, records, progress))
    judge.sample_offset = 0
    first = runs[0]
    judged = [_judged(scheme, s) for s in first]
    errors = [(rec.item_id, s.error or s.reason or "no verdict") for rec, s, j in zip(records, first, judged,
                                                                                       strict=True) if j is None]
    pairs = [(j, h) for j, h in zip(judged, humans, strict=True) if j is not None]
    report: dict[str, Any] = {
        "scorer": judge.name, "model": judge.config.model, "rubric": judge.rubric.name, "mode": judge.config.mode,
        "labels": {"file": str(labels_path), "n": len(labels), "fingerprint": file_fingerprint(labels_path)},
        "judged": len(pairs), "errors": {"count": len(errors), "first": [f"{i}: {e}"[:300] for i, e in errors[:5]]},
        "agreement": _agreement(scheme, pairs) if pairs else None,
        "usage": dict(judge.ctx.usage.get("judge") or {}),
    }
    if repeat > 1:
        per_item = []
        for i in range(len(records)):
            verdicts = [_judged(scheme, run[i]) for run in runs]
            if all(v is not None for v in verdicts):
                per_item.append([str(v[0]) for v in verdicts if v is not None])
        fk = fleiss_kappa(per_item)
        report["self_consistency"] = {"repeats": repeat, "fleiss_kappa": fk.to_dict(),
                                      "unanimous": proportion(sum(len(set(v)) == 1 for v in per_item), len(per_item))}
    report["probes"] = {}
    if scheme.kind == "pairwise":
        report["probes"]["position"] = _position_probe(first)
    if "length" in probes:
        padded = [_padded(rec) for rec in records]
        after = await _score_all(judge, padded, progress)
        report["probes"]["length"] = _length_probe(first, after)
    if by:
        report["by_slice"] = _by_slice(scheme, records, judged, humans, by)
    cert_path = judge.certificate_path()
    cert = None
    share = len(errors) / len(records)
    report["certificate"] = {"path": str(cert_path), "written": False}
    if not pairs:
        report["certificate"]["why_not"] = "the judge gave no verdict on any labelled item"
    elif share > MAX_ERROR_SHARE:
        report["certificate"]["why_not"] = (f"the judge failed on {len(errors)} of {len(records)} items "
                                            f"(more than {MAX_ERROR_SHARE:.0%}); fix the judge and calibrate again")
    else:
        from evalrun._version import __version__
        from evalrun.engine import now_iso

        cert = {"fingerprint": judge.fingerprint(), "created_at": now_iso(), "evalrun_version": __version__,
                "judge": {"scorer": judge.name, "model": judge.config.model, "base_url": judge.config.base_url,
                          "rubric": judge.rubric.name, "rubric_fingerprint": judge.rubric.fingerprint,
                          "mode": judge.config.mode, "samples": judge.config.samples,
                          "parameters": judge._params()},
                "labels": {**report["labels"], "file": labels_path.name, "judged": len(pairs),
                           "errors": len(errors)},
                "agreement": report["agreement"]["kappa"] and {"kappa": report["agreement"]["kappa"],
                                                               "scheme": scheme.kind,
                                                               "pass_fail": report["agreement"]["pass_fail"]},
                **({"self_consistency": report["self_consistency"]} if "self_consistency" in report else {}),
                "probes": report["probes"]}
    written = False
    if cert is not None and write:
        try:
            certificate.write(cert_path, cert)
        except OSError as e:
            raise RunFailed(f"could not write the certificate {cert_path}: {e.strerror or e}") from None
        written = True
        report["certificate"]["written"] = True
    return Calibration(report, cert, cert_path, written)


def _padded(rec: Record) -> Record:
    out = rec.output
    padded = out + PADDING if isinstance(out, str) else {"answer": out, "note": PADDING.strip()}
    return Record(item_id=rec.item_id, trial=0, input=rec.input, expected_output=rec.expected_output,
                  output=padded, metadata=rec.metadata)


def _position_probe(scores: list[Score]) -> dict[str, Any]:
    """Pairwise answers in both orders: an inconsistent pair (the verdict follows the position)
    counts as a tie in the score and is reported here."""
    consistent = inconsistent = prefers_a = 0
    for s in scores:
        orders = (s.extra or {}).get("orders") if s.error is None else None
        if not orders:
            continue
        for pair in (orders if isinstance(orders[0], list) else [orders]):
            first, swapped = pair
            cand1 = {"A": "win", "B": "loss", "tie": "tie"}[first]
            cand2 = {"A": "loss", "B": "win", "tie": "tie"}[swapped]
            if cand1 == cand2:
                consistent += 1
            else:
                inconsistent += 1
                prefers_a += first == "A" and swapped == "A"
    total = consistent + inconsistent
    share = proportion(inconsistent, total)
    ci = share["ci95"]
    # detected: the share of order-inconsistent pairs is above 5% with 95% confidence
    return {"pairs": total, "inconsistent": share, "inconsistent_favouring_a": proportion(prefers_a, inconsistent),
            "detected": bool(ci and ci[0] > 0.05)}


def _length_probe(before: list[Score], after: list[Score]) -> dict[str, Any]:
    diffs, flips, n = [], 0, 0
    for a, b in zip(before, after, strict=True):
        if a.error is not None or b.error is not None or a.value is None or b.value is None:
            continue
        n += 1
        diffs.append(b.value - a.value)
        flips += bool(a.passed) != bool(b.passed)
    if not diffs:
        return {"n": 0}
    m, lo, hi = mean_ci(diffs)
    lo, hi = (m, m) if math.isnan(lo) else (lo, hi)
    return {"n": n, "score_change": {"mean": round(m, 4), "ci95": [round(lo, 4), round(hi, 4)]},
            "verdict_flips": proportion(flips, n), "detected": lo > 0 or hi < 0}


def _by_slice(scheme: Scheme, records: list[Record], judged: list[tuple[Any, bool] | None],
              humans: list[tuple[Any, bool]], keys: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        groups: dict[str, list[tuple[bool, bool]]] = defaultdict(list)
        for rec, j, h in zip(records, judged, humans, strict=True):
            if j is None:
                continue
            for v in values_of(rec.metadata, key):
                groups[v].append((j[1], h[1]))
        out[key] = {v: binary_agreement([a for a, _ in g], [b for _, b in g]).to_dict()
                    for v, g in sorted(groups.items())}
    return out


def run_calibration(loaded: LoadedConfig, scorer_name: str, labels_path: Path, **kw: Any) -> Calibration:
    return asyncio.run(calibrate(loaded, scorer_name, labels_path, **kw))


def _pct(p: dict[str, Any] | None) -> str:
    if not p or p.get("value") is None:
        return "n/a"
    lo, hi = p["ci95"]
    return f"{p['value']:.1%} [{lo:.1%}, {hi:.1%}] (n {p['n']})"


def render_text(report: dict[str, Any]) -> list[str]:
    """The calibration report as plain lines (the CLI escapes control characters)."""
    lines = [f"judge {report['scorer']} ({report['model']}, rubric {report['rubric']}, {report['mode']}) "
             f"against {report['labels']['n']} human labels"]
    if report["errors"]["count"]:
        lines.append(f"  judge errors: {report['errors']['count']} items left out of the agreement")
        lines += [f"    {e}" for e in report["errors"]["first"]]
    ag = report.get("agreement")
    if ag:
        k = ag["kappa"]
        pf = ag["pass_fail"]
        if k.get("kappa") is None:
            ktext = f"kappa undefined ({k.get('undefined')})"
        else:
            weights = f", {k['weights']} weights" if k.get("weights") else ""
            ktext = f"Cohen's κ {k['kappa']:.3f} [{k['ci95'][0]:.3f}, {k['ci95'][1]:.3f}] ({ag['scheme']}{weights})"
        lines.append(f"  agreement: {ktext}")
        base = pf.get("base_rate")
        lines.append(f"  raw agreement {_pct(pf['raw_agreement'])}; humans pass {base:.1%} of items, "
                     f"the judge {pf['judge_pass_rate']:.1%}" if base is not None else "")
        lines.append(f"  TPR {_pct(pf['tpr'])}  TNR {_pct(pf['tnr'])}  precision {_pct(pf['precision'])}")
        c = pf["confusion"]
        lines.append(f"  confusion (judge × human): pass/pass {c['tp']}  pass/fail {c['fp']}  "
                     f"fail/pass {c['fn']}  fail/fail {c['tn']}")
        if ag.get("spearman") is not None:
            lines.append(f"  Spearman ρ {ag['spearman']:.3f}")
    sc = report.get("self_consistency")
    if sc:
        fk = sc["fleiss_kappa"]
        ktext = f"{fk['kappa']:.3f}" if fk.get("kappa") is not None else f"undefined ({fk.get('undefined')})"
        lines.append(f"  self-consistency over {sc['repeats']} repeats: Fleiss κ {ktext}; "
                     f"same verdict every time {_pct(sc['unanimous'])}")
    probes = report.get("probes") or {}
    if "position" in probes:
        p = probes["position"]
        lines.append(f"  position probe: order-inconsistent pairs {_pct(p['inconsistent'])} (scored as ties)"
                     f"{'; of them favouring position A ' + _pct(p['inconsistent_favouring_a']) if p['inconsistent']['n'] else ''}"
                     f"{' — POSITION BIAS' if p['detected'] else ''}")
    if "length" in probes and probes["length"].get("n"):
        p = probes["length"]
        ch = p["score_change"]
        lines.append(f"  length probe (padded outputs): score change {ch['mean']:+.3f} [{ch['ci95'][0]:+.3f}, "
                     f"{ch['ci95'][1]:+.3f}], verdict flips {_pct(p['verdict_flips'])}"
                     f"{' — LENGTH BIAS' if p['detected'] else ''}")
    for key, groups in (report.get("by_slice") or {}).items():
        lines.append(f"  agreement by {key}:")
        for value, g in list(groups.items())[:20]:
            k = g["kappa"]
            kt = f"κ {k['kappa']:.2f}" if k.get("kappa") is not None else "κ undefined"
            lines.append(f"    {value[:60]}: {kt}, raw agreement {_pct(g['raw_agreement'])}")
    cert = report["certificate"]
    if cert.get("written"):
        lines.append(f"  certificate written: {cert['path']} (commit it; a run with this judge shows it, and a "
                     "changed rubric, model or parameter makes it stale)")
    elif cert.get("why_not"):
        lines.append(f"  no certificate: {cert['why_not']}")
    return [ln for ln in lines if ln]
