"""Embedding scorer benchmark: the scorer against ``encode`` of the de-duplicated texts (the fair
baseline) and the naive way, and a warm run against a cold one.

Data: a golden set of 667 items run with ``repeat: 3`` (trial-major, as the engine runs it),
cut to 2,000 (output, expected) records. Expected outputs are answer-like sentences of 4-60
words (median ~16); each trial's output is a reworded variant of the expected answer. By
default every output is distinct (the worst case for de-duplication: a pipeline sampled at
temperature > 0); ``--same-output-rate`` makes a share of later trials repeat trial 0's
output, as a temperature-0 pipeline does.

Phases, each in its own process so peak RSS belongs to that phase alone:

  naive  ``model.encode`` of every text (output, expected, output, expected...) in dataset
         order, one call, same model and batch size, then the cosines
  dedup  the same with each distinct text encoded once (one call): what any scorer that
         de-duplicates can reach; the scorer's cold run is judged against this one
  cold   the scorer, empty disk cache, fed engine-sized batches (512 records) the way the
         engine feeds it when records come faster than they are scored: up to
         ``SCORING_PARALLELISM`` (4) batches in flight (they take turns on the model thread)
  serial the same, one batch at a time (a slow pipeline, whose records the scorer keeps up
         with)
  warm   a fresh process and scorer over the same records with the cache the cold run left

Model loading is timed apart and left out of naive and cold throughput (both use the same
loaded model); the warm phase never loads it, which is part of why it is fast.

Each phase runs ``--rounds`` times, alternating; the table shows each phase's median round.
A ratio is given three ways: the median of the per-round ratios (phases of one round run
back to back, so the machine's load, which drifts over minutes, disturbs them alike), the
ratio of medians and the ratio of the fastest rounds.

Usage: python benchmarks/bench_embedding.py [--pairs 2000] [--batch-size 64] [--same-output-rate 0] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SUBJECTS = ["The capital of Australia", "Photosynthesis", "The French Revolution", "A binary search tree",
            "The mitochondria", "Inflation in the eurozone", "The Treaty of Versailles", "Your refund request",
            "The Python GIL", "Climate change", "The speed of light", "Our return policy", "The immune system",
            "A neural network", "The Great Wall of China", "The order you placed", "Quantum entanglement",
            "The stock market", "The water cycle", "Your subscription", "The Roman Empire", "TCP congestion control"]
VERBS = ["is", "was", "describes", "explains", "depends on", "refers to", "involves", "allows", "requires",
         "results in", "comes from", "is caused by", "is best understood as", "consists of", "leads to"]
OBJECTS = ["the process by which plants convert light into chemical energy",
           "a data structure that keeps its keys in sorted order", "Canberra, not Sydney as many people assume",
           "a shipment that will arrive within five business days", "the powerhouse of the cell",
           "a rise in the general level of prices", "the agreement that ended the First World War",
           "a lock that lets only one thread execute Python bytecode at a time",
           "a long-term shift in global temperatures and weather patterns", "roughly 300,000 kilometres per second",
           "a full refund if the item is returned within thirty days", "the body's defence against infection",
           "layers of weighted connections trained by gradient descent", "a series of fortifications in the north",
           "a correlation between particles that persists at any distance", "an index of the largest companies",
           "evaporation, condensation, precipitation and collection", "a monthly plan that renews automatically",
           "an empire that dominated the Mediterranean for centuries",
           "an algorithm that slows senders down when the network is congested"]
CLAUSES = ["which is why it matters", "according to most textbooks", "as of this year",
           "although there are several exceptions worth noting", "in most cases", "for the reasons given above",
           "and this has been confirmed by several independent studies over the last decade",
           "so you do not need to do anything else", "which surprised many historians at the time",
           "unless the account was created before the policy changed", "with some regional variation"]
REWORDS = {"is": "is essentially", "was": "had been", "the": "this", "a": "one", "which": "that",
           "many": "lots of", "several": "a few", "most": "the majority of", "roughly": "about",
           "within": "inside", "largest": "biggest", "long-term": "lasting", "full": "complete"}


def sentence(rng: random.Random) -> str:
    parts = [rng.choice(SUBJECTS), rng.choice(VERBS), rng.choice(OBJECTS)]
    for _ in range(rng.choice([0, 0, 1, 1, 1, 2, 3])):
        parts.append(", " + rng.choice(CLAUSES))
    text = " ".join(parts).replace(" ,", ",") + "."
    if rng.random() < 0.3:  # some answers are two sentences
        text += " " + rng.choice(SUBJECTS) + " " + rng.choice(VERBS) + " " + rng.choice(OBJECTS) + "."
    return text


def reword(text: str, rng: random.Random) -> str:
    words = text.split()
    out = [REWORDS.get(w, w) if rng.random() < 0.5 else w for w in words]
    if rng.random() < 0.5 and len(out) > 6:
        del out[rng.randrange(1, len(out) - 1)]
    if rng.random() < 0.4:
        out.insert(0, rng.choice(["Well,", "In short,", "Basically,", "Sure!", "To answer your question,"]))
    return " ".join(out)


def make_pairs(n: int, same_output_rate: float, seed: int = 7) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    items = -(-n // 3)
    expected = [sentence(rng) for _ in range(items)]
    first: list[str] = []
    pairs = []
    for trial in range(3):
        for i, exp in enumerate(expected):
            if trial > 0 and rng.random() < same_output_rate:
                out = first[i]
            else:
                out = reword(exp, rng)
                while out == exp:
                    out = reword(exp, rng)
            if trial == 0:
                first.append(out)
            pairs.append((out, exp))
    return pairs[:n]


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase(name: str, args: argparse.Namespace, cache_path: Path) -> dict:
    import numpy as np

    from evalrun.engine import SCORING_PARALLELISM
    from evalrun.records import Record
    from evalrun.scoring import _embed_model as em
    from evalrun.scoring.base import ScorerContext
    from evalrun.scoring.embedding import EmbeddingConfig, EmbeddingSimilarity
    from evalrun.store import Cache

    pairs = make_pairs(args.pairs, args.same_output_rate)
    result: dict = {"phase": name}
    rss_start = _rss_mb()
    path = em.bundled_model_path()
    if name in ("naive", "dedup", "cold", "serial"):
        # loaded and warmed on the thread that will encode: the scorer's own thread for cold
        from evalrun.scoring.embedding import _worker

        def load():
            t0 = time.perf_counter()
            model, _ = em.load_model(path, "cpu")
            model.encode(["warm up the kernels"], batch_size=args.batch_size)
            return model, time.perf_counter() - t0

        model, result["model_load_s"] = load() if name in ("naive", "dedup") else _worker.submit(load).result()
    rss_before = _rss_mb()
    tracemalloc.start()
    t0 = time.perf_counter()
    if name == "naive":
        texts = [t for pair in pairs for t in pair]
        vecs = model.encode(texts, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        values = (vecs[0::2] * vecs[1::2]).sum(axis=1).tolist()
        result["texts_encoded"] = len(texts)
    elif name == "dedup":
        distinct = list(dict.fromkeys(t for pair in pairs for t in pair))
        vecs = model.encode(distinct, batch_size=args.batch_size, convert_to_numpy=True, show_progress_bar=False,
                            normalize_embeddings=True)
        at = {t: i for i, t in enumerate(distinct)}
        values = [float(vecs[at[o]] @ vecs[at[e]]) for o, e in pairs]
        result["texts_encoded"] = len(distinct)
    else:
        cache = Cache(cache_path)
        cfg = EmbeddingConfig(type="embedding_similarity", batch_size=args.batch_size, device="cpu")
        scorer = EmbeddingSimilarity(cfg, ScorerContext(base_dir=REPO, cache=cache))
        records = [Record(f"item-{i % -(-args.pairs // 3)}", i // -(-args.pairs // 3), "q", exp, out)
                   for i, (out, exp) in enumerate(pairs)]

        in_flight = SCORING_PARALLELISM if name == "cold" else 1

        async def run() -> list[float]:
            await scorer.setup()
            sem = asyncio.Semaphore(in_flight)

            async def one(batch: list[Record]) -> list[float]:
                async with sem:
                    return [s.value for s in await scorer.score_batch(batch)]

            size = scorer.batch_size
            parts = await asyncio.gather(*(one(records[i:i + size]) for i in range(0, len(records), size)))
            return [v for part in parts for v in part]

        values = asyncio.run(run())
        result.update(scorer.summary_extra())
        cache.close()
    elapsed = time.perf_counter() - t0
    _, py_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    result.update(seconds=elapsed, pairs_per_s=len(pairs) / elapsed, peak_rss_mb=_rss_mb(),
                  rss_at_start_mb=rss_start, rss_before_scoring_mb=rss_before,
                  python_alloc_peak_mb=py_peak / 2**20, torch_imported="torch" in sys.modules,
                  values=[round(v, 6) for v in values])
    return result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--same-output-rate", type=float, default=0.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--phase", choices=["naive", "dedup", "cold", "serial", "warm"])
    ap.add_argument("--cache")
    args = ap.parse_args()
    if args.phase:
        print(json.dumps(phase(args.phase, args, Path(args.cache))))
        return

    pairs = make_pairs(args.pairs, args.same_output_rate)
    words = sorted(len(t.split()) for p in pairs for t in p)
    print(f"{len(pairs)} pairs; {len({e for _, e in pairs})} distinct expected, {len({o for o, _ in pairs})} "
          f"distinct outputs; words per text min {words[0]} median {words[len(words) // 2]} max {words[-1]}; "
          f"batch size {args.batch_size}; same-output rate {args.same_output_rate}")
    # the machine may be shared: phases alternate, and medians and best rounds are both shown
    names = ("naive", "dedup", "cold", "serial", "warm")
    rounds: dict[str, list[dict]] = {n: [] for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        for rnd in range(args.rounds):
            for name in names:
                cache = str(Path(tmp) / f"cache{rnd}-{'serial' if name == 'serial' else 'cold'}.sqlite")
                cmd = [sys.executable, __file__, "--phase", name, "--cache", cache, "--pairs", str(args.pairs),
                       "--batch-size", str(args.batch_size), "--same-output-rate", str(args.same_output_rate)]
                out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
                r = json.loads(out.strip().splitlines()[-1])
                print(f"  round {rnd + 1} {name}: {r['seconds']:.3f} s", flush=True)
                rounds[name].append(r)
    med = {n: sorted(rs, key=lambda r: r["seconds"])[(len(rs) - 1) // 2] for n, rs in rounds.items()}
    best = {n: min(r["seconds"] for r in rs) for n, rs in rounds.items()}
    naive, dedup, cold, serial, warm = (med[n] for n in names)
    # every phase must agree on every score, or the speed means nothing
    diff = max(abs(a - b) for r in (dedup, cold, serial) for a, b in zip(naive["values"], r["values"], strict=True))
    diff_warm = max(abs(a - b) for a, b in zip(cold["values"], warm["values"], strict=True))
    print(f"medians of {args.rounds} rounds:")
    print(f"{'phase':6} {'seconds':>8} {'pairs/s':>9} {'texts encoded':>14} {'peak RSS MB':>12} "
          f"{'py alloc peak MB':>17} {'torch loaded':>13}")
    for r in (naive, dedup, cold, serial, warm):
        encoded = r.get("texts_encoded", r.get("texts_embedded", 0))
        print(f"{r['phase']:6} {r['seconds']:8.3f} {r['pairs_per_s']:9.0f} {encoded:14d} {r['peak_rss_mb']:12.0f} "
              f"{r['python_alloc_peak_mb']:17.1f} {str(r['torch_imported']):>13}")

    def ratio(a: str, b: str) -> str:
        # the phases of one round ran back to back, so their ratio is the least disturbed by the
        # machine's load drifting over minutes; the median of those is the headline
        paired = sorted(x["seconds"] / y["seconds"] for x, y in zip(rounds[a], rounds[b], strict=True))
        return (f"{statistics.median_low(paired):.2f}x (median of per-round ratios; range {paired[0]:.2f}-"
                f"{paired[-1]:.2f}); {med[a]['seconds'] / med[b]['seconds']:.2f}x of medians, "
                f"{best[a] / best[b]:.2f}x of best rounds")

    print(f"model load (not in the numbers above): {cold['model_load_s']:.2f} s")
    print(f"cold scorer vs de-duplicated encode: {ratio('dedup', 'cold')} (the fair baseline: >= 1.0x)")
    print(f"cold scorer vs naive: {ratio('naive', 'cold')}; "
          f"exact-match shortcuts {cold['exact_matches']}, cache hits {cold['cache_hits']}")
    print(f"serial scorer vs naive: {ratio('naive', 'serial')}")
    print(f"warm vs cold: {ratio('cold', 'warm')} (goal >= 10x); "
          f"warm embedded {warm['texts_embedded']} texts, {warm['cache_hits']} cache hits")
    print(f"max |score difference|: naive vs dedup, cold and serial {diff:.2e}, cold vs warm {diff_warm:.2e}")


if __name__ == "__main__":
    main()
