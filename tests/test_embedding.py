"""The embedding_similarity scorer with the real bundled all-MiniLM-L6-v2 model: similarity
ordering, pass logic, edge cases, the disk cache (agreement, corruption, fingerprints) and
model resolution."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from evalrun.errors import UsageError
from evalrun.records import Record, Score
from evalrun.scoring import _embed_model as em
from evalrun.scoring.base import ScorerContext
from evalrun.scoring.embedding import EmbeddingConfig, EmbeddingSimilarity, text_key
from evalrun.store import Cache

PARAPHRASES = [
    ("The cat sat on the mat.", "A cat was sitting on the mat."),
    ("Paris is the capital of France.", "The capital city of France is Paris."),
    ("You can return the item within thirty days for a full refund.",
     "Items may be sent back within 30 days and the money is refunded in full."),
    ("The meeting was moved to Tuesday afternoon.", "They rescheduled the meeting for Tuesday afternoon."),
]
UNRELATED = [
    ("The cat sat on the mat.", "Quarterly revenue grew by eight percent."),
    ("Paris is the capital of France.", "Photosynthesis turns light into chemical energy."),
    ("You can return the item within thirty days for a full refund.", "The volcano erupted at dawn."),
    ("The meeting was moved to Tuesday afternoon.", "Penguins cannot fly but swim very well."),
]


def make(tmp_path: Path, cache: Cache | None = None, **cfg) -> EmbeddingSimilarity:
    cfg.setdefault("device", "cpu")
    config = EmbeddingConfig(type="embedding_similarity", **cfg)
    return EmbeddingSimilarity(config, ScorerContext(base_dir=tmp_path, cache=cache))


def score(scorer: EmbeddingSimilarity, records: list[Record]) -> list[Score]:
    async def go() -> list[Score]:
        if not hasattr(scorer, "fingerprint"):
            await scorer.setup()
        return await scorer.score_batch(records)

    return asyncio.run(go())


def rec(output, expected, item_id: str = "i") -> Record:
    return Record(item_id=item_id, trial=0, input="q", expected_output=expected, output=output)


@pytest.fixture
def cache(tmp_path: Path):
    c = Cache(tmp_path / "cache" / "cache.sqlite")
    yield c
    c.close()


def test_paraphrases_score_higher_than_unrelated(tmp_path, cache):
    s = make(tmp_path, cache)
    para = [x.value for x in score(s, [rec(a, b) for a, b in PARAPHRASES])]
    unrel = [x.value for x in score(s, [rec(a, b) for a, b in UNRELATED])]
    assert min(para) > max(unrel), (para, unrel)
    assert min(para) > 0.6 and max(unrel) < 0.3
    assert all(-1.0 <= v <= 1.0 for v in para + unrel)


def test_threshold_decides_passed(tmp_path, cache):
    a, b = PARAPHRASES[0]
    lenient = score(make(tmp_path, cache, threshold=0.5), [rec(a, b)])[0]
    strict = score(make(tmp_path, cache, threshold=0.99), [rec(a, b)])[0]
    assert lenient.value == strict.value and 0.5 < lenient.value < 0.99
    assert lenient.passed is True and lenient.reason is None
    assert strict.passed is False and "< threshold 0.99" in strict.reason
    # the boundary itself passes: passed = value >= threshold
    at = score(make(tmp_path, cache, threshold=lenient.value), [rec(a, b)])[0]
    assert at.passed is True


def test_threshold_and_fields_are_validated():
    for bad in ({"threshold": 1.5}, {"threshold": -1.01}, {"threshold": "high"}, {"batch_size": 0},
                {"device": "gpu"}, {"model": ""}, {"modle": "x"}, {"threshold": True}, {"batch_size": True},
                {"threshold": float("nan")}):
        with pytest.raises(ValidationError):
            EmbeddingConfig(type="embedding_similarity", **bad)
    assert EmbeddingConfig(type="embedding_similarity", threshold=-1).threshold == -1
    assert EmbeddingConfig(type="embedding_similarity").threshold == 0.8


def test_best_of_several_expected(tmp_path, cache):
    out = "The capital of France is Paris."
    single_bad = score(make(tmp_path, cache), [rec(out, "Bananas are rich in potassium.")])[0]
    several = score(make(tmp_path, cache), [rec(out, ["Bananas are rich in potassium.", "Paris is France's capital."])])[0]
    alone_good = score(make(tmp_path, cache), [rec(out, "Paris is France's capital.")])[0]
    assert several.value == pytest.approx(alone_good.value, abs=1e-6)
    assert several.value > single_bad.value
    assert several.extra == {"best_expected": 1}


def test_non_string_outputs_compare_as_canonical_json(tmp_path, cache):
    s = make(tmp_path, cache)
    same_dict = score(s, [rec({"b": 2, "a": "x"}, {"a": "x", "b": 2})])[0]
    assert same_dict.value == 1.0 and same_dict.passed
    number = score(s, [rec(42, "42")])[0]
    assert number.value == 1.0
    text_of_json = score(s, [rec('{"a":"x","b":3}', {"a": "x", "b": 2})])[0]
    assert 0.5 < text_of_json.value < 1.0  # embedded as JSON text, close but not equal


def test_empty_output_and_missing_expected(tmp_path, cache):
    s = make(tmp_path, cache, threshold=-1.0)
    empty, none, blank, both_empty, no_expected, exp_empty = score(s, [
        rec("", "Paris"), rec(None, "Paris"), rec("   \n", "Paris"), rec("", ""), rec("Paris", None),
        rec("Paris", ""),
    ])
    for x in (empty, none, blank):
        assert x.value == 0.0 and x.passed is False and x.error is None and x.reason == "empty output"
    assert both_empty.value == 1.0 and both_empty.passed is True
    assert no_expected.value is None and no_expected.passed is None and "no expected_output" in no_expected.reason
    assert exp_empty.value == 0.0 and exp_empty.passed is False


def test_identical_text_needs_no_embedding(tmp_path, cache):
    s = make(tmp_path, cache)
    out = score(s, [rec("  Paris ", ["Lyon", "Paris"])])[0]
    assert out.value == 1.0 and out.passed
    assert s.stats["texts_embedded"] == 0 and s.stats["exact_matches"] == 1


def test_duplicates_embedded_once(tmp_path, cache):
    s = make(tmp_path, cache)
    records = [rec(f"answer number {i % 3}", "the expected answer", item_id=str(i)) for i in range(30)]
    scores = score(s, records)
    assert s.stats["texts_embedded"] == 4  # three distinct outputs and one expected text
    assert [x.value for x in scores[:3]] == [x.value for x in scores[3:6]]


def _fresh_vectors(texts: list[str]) -> np.ndarray:
    model, _ = em.load_model(em.bundled_model_path(), "cpu")
    return model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)


def test_cached_and_fresh_embeddings_agree(tmp_path, cache):
    texts = [a for a, _ in PARAPHRASES] + [b for _, b in PARAPHRASES]
    first = make(tmp_path, cache)
    cold = asyncio.run(_embed(first, texts))
    assert first.stats["texts_embedded"] == len(texts) and first.stats["cache_hits"] == 0
    second = make(tmp_path, cache)  # a new scorer: nothing in memory, everything on disk
    warm = asyncio.run(_embed(second, texts))
    assert second.stats["texts_embedded"] == 0 and second.stats["cache_hits"] == len(texts)
    fresh = _fresh_vectors(texts)
    for i, t in enumerate(texts):
        assert warm[t].dtype == np.float32 and warm[t].shape == (384,)
        np.testing.assert_allclose(warm[t], fresh[i], atol=1e-6)
        np.testing.assert_allclose(cold[t], fresh[i], atol=1e-6)


async def _embed(s: EmbeddingSimilarity, texts: list[str]) -> dict[str, np.ndarray]:
    await s.setup()
    return await s.embed(texts)


def _tamper(cache_path: Path, namespace: str, text: str, value: bytes, fix_checksum: bool) -> None:
    db = sqlite3.connect(cache_path)
    with db:
        if fix_checksum:  # a tampering that keeps the store's own checksum valid
            cur = db.execute("UPDATE entries SET value=?, checksum=? WHERE ns=? AND key=?",
                             (value, Cache._checksum(value), namespace, text_key(text)))
        else:
            cur = db.execute("UPDATE entries SET value=? WHERE ns=? AND key=?", (value, namespace, text_key(text)))
        assert cur.rowcount == 1
    db.close()


@pytest.mark.parametrize("how", ["bytes_flipped", "truncated_with_checksum", "not_unit_with_checksum",
                                 "nan_with_checksum"])
def test_corrupt_cache_entry_is_recomputed(tmp_path, cache, how):
    text = "The meeting was moved to Tuesday afternoon."
    first = make(tmp_path, cache)
    good = asyncio.run(_embed(first, [text]))[text].copy()
    blob = bytearray(good.tobytes())
    if how == "bytes_flipped":
        blob[10] ^= 0xFF
        bad, fix = bytes(blob), False
    elif how == "truncated_with_checksum":
        bad, fix = bytes(blob[:-4]), True
    elif how == "not_unit_with_checksum":
        bad, fix = (good * 0.5).astype(np.float32).tobytes(), True
    else:
        v = good.copy()
        v[3] = np.nan
        bad, fix = v.tobytes(), True
    _tamper(cache.path, first.namespace, text, bad, fix)

    second = make(tmp_path, cache)
    got = asyncio.run(_embed(second, [text]))[text]
    assert second.stats["texts_embedded"] == 1 and second.stats["cache_hits"] == 0
    if fix:  # the store's checksum passed: the scorer's own check caught it
        assert second.stats["corrupt_entries"] == 1
    np.testing.assert_allclose(got, good, atol=1e-6)
    # the entry on disk is good again, and a third scorer uses it
    third = make(tmp_path, cache)
    again = asyncio.run(_embed(third, [text]))[text]
    assert third.stats["cache_hits"] == 1 and third.stats["texts_embedded"] == 0
    np.testing.assert_allclose(again, good, atol=1e-6)


def test_works_without_a_disk_cache(tmp_path):
    s = make(tmp_path, None)
    a, b = PARAPHRASES[1]
    assert score(s, [rec(a, b)])[0].passed is True


def test_model_loaded_once_per_process(tmp_path, cache):
    s1, s2 = make(tmp_path, cache), make(tmp_path, cache, threshold=0.5)
    score(s1, [rec("one text here", "another text there")])
    score(s2, [rec("a third text", "and a fourth")])
    assert s1.model is not None and s1.model is s2.model


def test_unknown_model_is_a_usage_error(tmp_path, cache):
    for name, fragment in [("no-such-model-xyz", "not in the Hugging Face cache"),
                           ("./models/missing", "folder './models/missing' not found")]:
        s = make(tmp_path, cache, model=name)
        with pytest.raises(UsageError, match=fragment):
            asyncio.run(s.setup())
    (tmp_path / "empty_model").mkdir()
    with pytest.raises(UsageError, match="not a sentence-transformers model folder"):
        asyncio.run(make(tmp_path, cache, model="empty_model").setup())


def _copy_model(dest: Path) -> Path:
    """The bundled model as a folder of its own: small files copied, weights linked."""
    src = em.bundled_model_path()
    for f in src.rglob("*"):
        if f.is_file():
            target = dest / f.relative_to(src)
            target.parent.mkdir(parents=True, exist_ok=True)
            if f.stat().st_size > 1_000_000:
                target.symlink_to(f)
            else:
                target.write_bytes(f.read_bytes())
    return dest


def test_local_model_folder_and_fingerprint(tmp_path, cache):
    folder = _copy_model(tmp_path / "models" / "mini")
    s = make(tmp_path, cache, model="models/mini")
    a, b = PARAPHRASES[0]
    value = score(s, [rec(a, b)])[0].value
    bundled = make(tmp_path, cache)
    assert score(bundled, [rec(a, b)])[0].value == pytest.approx(value, abs=1e-6)
    # same files, same fingerprint: the cache is shared whatever the model is called
    assert s.fingerprint == bundled.fingerprint and s.namespace == bundled.namespace
    # a changed file (here the pooling config) is a different model: a different cache namespace
    cfg = folder / "1_Pooling" / "config.json"
    cfg.write_text(cfg.read_text().replace("\n", " \n", 1))
    em._fp_memo.clear()
    assert em.model_fingerprint(folder, cache) != s.fingerprint


def test_fingerprint_is_remembered_by_file_stats(tmp_path, cache, monkeypatch):
    folder = _copy_model(tmp_path / "m")
    fp = em.model_fingerprint(folder, cache)
    em._fp_memo.clear()  # as in a new process: only the disk cache remembers

    def no_reading(*a, **k):
        raise AssertionError("weights hashed again")

    monkeypatch.setattr(em, "open", no_reading, raising=False)
    assert em.model_fingerprint(folder, cache) == fp


def test_broken_model_fails_batches_with_a_clear_error(tmp_path, cache):
    folder = _copy_model(tmp_path / "broken")
    weights = folder / "model.safetensors"
    weights.unlink()
    weights.write_bytes(b"not safetensors at all")
    s = make(tmp_path, cache, model="broken")
    asyncio.run(s.setup())  # found and fingerprinted: loading is what fails
    for _ in range(2):  # the second batch fails at once from the remembered error
        with pytest.raises(RuntimeError, match="cannot load embedding model 'broken'"):
            score(s, [rec("some output", "some expected text")])


def test_unavailable_device_is_a_usage_error(tmp_path, cache):
    import torch

    if not torch.backends.mps.is_available():
        with pytest.raises(UsageError, match="MPS"):
            asyncio.run(make(tmp_path, cache, device="mps").setup())
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA is not available"):
            asyncio.run(make(tmp_path, cache, device="cuda:1").setup())


def test_cancel_stops_between_chunks_and_keeps_what_was_done(tmp_path, cache, monkeypatch):
    s = make(tmp_path, cache, batch_size=1)  # chunks of 8 texts
    asyncio.run(s.setup())
    real_encode = em.encode

    def encode_then_ctrl_c(*a, **k):
        s.ctx.cancelled = True  # as the engine's Ctrl-C handler does, during the first chunk
        return real_encode(*a, **k)

    monkeypatch.setattr(em, "encode", encode_then_ctrl_c)
    texts = [f"sentence number {i} about something" for i in range(20)]
    with pytest.raises(RuntimeError, match="cancelled"):
        asyncio.run(s.embed(texts))
    assert s.stats["texts_embedded"] == 8
    monkeypatch.undo()
    again = make(tmp_path, cache)
    asyncio.run(again.setup())
    asyncio.run(again.embed(texts))
    assert again.stats["cache_hits"] == 8 and again.stats["texts_embedded"] == 12


def _count_calls(s: EmbeddingSimilarity, monkeypatch) -> list[list[str]]:
    calls: list[list[str]] = []
    real = s._embed_blocking

    def spy(texts: list[str]):
        calls.append(list(texts))
        return real(texts)

    monkeypatch.setattr(s, "_embed_blocking", spy)
    return calls


def test_batches_in_flight_together_embed_a_shared_text_once(tmp_path, cache, monkeypatch):
    # the engine scores up to four batches at once; they take turns on the embedding thread
    s = make(tmp_path, cache)
    calls = _count_calls(s, monkeypatch)

    async def go() -> list[list[Score]]:
        await s.setup()
        batches = [[rec(f"output {i} of batch {b}", "the shared expected answer", item_id=f"{b}-{i}")
                    for i in range(3)] for b in range(3)]
        return await asyncio.gather(*(s.score_batch(b) for b in batches))

    results = asyncio.run(go())
    assert len(calls) == 3  # one turn per batch, each text once in it
    assert s.stats["texts_embedded"] == 10  # nine outputs and the expected answer once
    assert s.stats["memory_hits"] == 2  # the later batches found the shared answer in memory
    alone = make(tmp_path, None)  # no disk cache: computed again, batch by batch
    assert [x.value for x in score(alone, [rec("output 1 of batch 2", "the shared expected answer")])] == \
        [results[2][1].value]


def test_a_batch_arriving_while_the_model_is_busy_reuses_what_it_embeds(tmp_path, cache, monkeypatch):
    s = make(tmp_path, cache)

    async def go() -> None:
        await s.setup()
        first = asyncio.ensure_future(s.embed(["alpha text", "shared text"]))
        await asyncio.sleep(0)  # the first batch is on the embedding thread now
        second = s.embed(["shared text", "beta text"])
        third = s.embed(["gamma text", "alpha text"])
        got = await asyncio.gather(first, second, third)
        assert set(got[1]) == {"shared text", "beta text"} and set(got[2]) == {"gamma text", "alpha text"}

    asyncio.run(go())
    # what the first one had just embedded is not embedded again
    assert s.stats["texts_embedded"] == 4 and s.stats["memory_hits"] == 2


def test_a_failing_text_fails_only_its_own_batch(tmp_path, monkeypatch):
    s = make(tmp_path, None)
    real = s._embed_blocking

    def picky(texts: list[str]):
        if "poison" in texts:
            raise ValueError("cannot embed poison")
        return real(texts)

    monkeypatch.setattr(s, "_embed_blocking", picky)

    async def go():
        await s.setup()
        return await asyncio.gather(s.embed(["good one", "poison"]), s.embed(["good two"]), s.embed(["poison"]),
                                    return_exceptions=True)

    bad, good, bad_alone = asyncio.run(go())
    assert isinstance(bad, ValueError) and isinstance(bad_alone, ValueError)
    assert set(good) == {"good two"}


def test_lone_surrogates_are_embedded_not_failed(tmp_path):
    s = make(tmp_path, None)
    (out,) = score(s, [rec("broken \ud800 output", "a broken output")])
    assert out.error is None and out.value is not None
    got = asyncio.run(s.embed(["broken \ud800 output"]))["broken \ud800 output"]
    np.testing.assert_allclose(got, _fresh_vectors(["broken ? output"])[0], atol=1e-6)


def test_embeddings_match_the_library_including_a_truncated_text(tmp_path):
    s = make(tmp_path, None)
    texts = [a for a, _ in PARAPHRASES] + ["word " * 400]  # one longer than the model's 256 tokens
    got = asyncio.run(_embed(s, texts))
    fresh = _fresh_vectors(texts)
    for i, t in enumerate(texts):
        np.testing.assert_allclose(got[t], fresh[i], atol=1e-6)


def test_a_model_with_a_default_prompt_is_encoded_as_the_library_does(tmp_path):
    # a default prompt is prepended by encode(): the scorer's embeddings must carry it too
    folder = _copy_model(tmp_path / "prompted")
    (folder / "config_sentence_transformers.json").write_text(
        '{"prompts": {"query": "query: "}, "default_prompt_name": "query"}')
    s = make(tmp_path, None, model=str(folder))
    texts = [a for a, _ in PARAPHRASES]
    got = asyncio.run(_embed(s, texts))
    model, _ = em.load_model(folder, "cpu")
    expected = model.encode(texts, convert_to_numpy=True, normalize_embeddings=True)
    plain = _fresh_vectors(texts)
    for i, t in enumerate(texts):
        np.testing.assert_allclose(got[t], expected[i], atol=1e-6)
        assert np.abs(got[t] - plain[i]).max() > 1e-3  # the prompt did change the embedding


def test_hub_name_resolves_from_the_local_hf_cache_only(tmp_path):
    # a hub cache laid out as huggingface_hub writes it, holding a copy of the bundled model
    hub = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = hub / "models--sentence-transformers--mini-copy"
    _copy_model(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    code = ("import sys; from pathlib import Path; from evalrun.scoring import _embed_model as em\n"
            "print(em.resolve_model(sys.argv[1], Path('.')))")
    env = {**os.environ, "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1"}
    for name in ("mini-copy", "sentence-transformers/mini-copy"):
        r = subprocess.run([sys.executable, "-c", code, name], cwd=tmp_path, env=env, capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert Path(r.stdout.strip()) == repo / "snapshots" / commit
    r = subprocess.run([sys.executable, "-c", code, "someone/not-cached"], cwd=tmp_path, env=env,
                       capture_output=True, text=True, timeout=120)
    assert "not in the Hugging Face cache" in r.stderr
