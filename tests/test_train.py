"""FindingEmo reading and splitting, the head's training, resumption and its ONNX graph (MC dropout)."""

from __future__ import annotations

import csv
import random

import numpy as np
import onnxruntime as ort
import pytest
import torch

from findingemo_fixture import HEADER, make_findingemo
from moodsic_live.errors import InputError
from moodsic_live.train.findingemo import read_findingemo, split
from moodsic_live.train.head import HeadConfig, HeadWeights, head_graph, numpy_head, train_head

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_findingemo(tmp_path_factory.mktemp("findingemo"), n=300)


def _write_ann(root, rows):
    with open(root / "annotations_single.ann", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER)
        for i, (path, v, a) in enumerate(rows):
            w.writerow([i, "u", path, "Undefined", "Adults", v, a, "Joy", "FacialExpression", 0, "2023-09-01"])


def test_every_label_is_converted_including_the_small_ones_the_seed_corrupted(tmp_path):
    # The seed converted only |x| > 1: V = -1, 0, 1 and A = 0, 1 kept their raw values as if they were
    # already on [-1, 1]. On FindingEmo's scales V = 1 is +1/3 and A = 1 is -2/3 in the reference space.
    (tmp_path / "Run_2" / "q").mkdir(parents=True)
    cases = [(-3, 0), (-1, 1), (0, 0), (1, 1), (0, 3), (3, 6)]
    rows = []
    for i, (v, a) in enumerate(cases):
        (tmp_path / "Run_2" / "q" / f"{i}.jpg").write_bytes(b"x")
        rows.append((f"/Run_2/q/{i}.jpg", v, a))
    _write_ann(tmp_path, rows)
    got = {a.image: (a.valence, a.arousal) for a in read_findingemo(tmp_path).items}
    expected = [(-1, -1), (-1 / 3, -2 / 3), (0, -1), (1 / 3, -2 / 3), (0, 0), (1, 1)]
    for i, want in enumerate(expected):
        assert got[f"Run_2/q/{i}.jpg"] == pytest.approx(want, abs=1e-12), cases[i]


def test_reader_counts_missing_images_and_names_layout_errors(tmp_path, dataset):
    data = read_findingemo(dataset)
    assert len(data.items) == 300 and data.missing == 5
    assert all((dataset / a.image).is_file() for a in data.items)
    assert {a.image.split("/")[0] for a in data.items} == {"Run_1", "Run_2"}

    with pytest.raises(InputError, match="no FindingEmo annotation file"):
        read_findingemo(tmp_path)
    _write_ann(tmp_path, [("/Run_2/q/0.jpg", 0, 3)])
    with pytest.raises(InputError, match="no Run_1/ or Run_2/"):
        read_findingemo(tmp_path)
    (tmp_path / "Run_2" / "q").mkdir(parents=True)
    with pytest.raises(InputError, match="none of the 1 annotated images"):
        read_findingemo(tmp_path)
    (tmp_path / "Run_2" / "q" / "0.jpg").write_bytes(b"x")
    _write_ann(tmp_path, [("/Run_2/q/0.jpg", 4, 3)])  # valence 4 is off FindingEmo's scale
    with pytest.raises(InputError, match=r"line 2: findingemo valence value 4 is outside its scale \[-3, 3\]"):
        read_findingemo(tmp_path)
    (tmp_path / "annotations_single.ann").write_text("file,score\na.jpg,3\n")
    with pytest.raises(InputError, match="no column.*image_path, valence, arousal"):
        read_findingemo(tmp_path)


def test_split_is_70_15_15_stratified_disjoint_and_independent_of_row_order(dataset):
    items = list(read_findingemo(dataset).items)
    parts = split(items)
    sizes = {k: len(v) for k, v in parts.items()}
    assert sum(sizes.values()) == 300
    assert sizes["train"] == pytest.approx(210, abs=6) and sizes["val"] == pytest.approx(45, abs=6)
    names = [set(a.image for a in v) for v in parts.values()]
    assert not (names[0] & names[1] or names[0] & names[2] or names[1] & names[2])
    shuffled = items[:]
    random.Random(3).shuffle(shuffled)
    assert split(shuffled) == parts
    assert split(items, seed=1) != parts
    # stratified: each split's share of positive valence is close to the whole's
    whole = np.mean([a.valence > 0 for a in items])
    for part in parts.values():
        assert np.mean([a.valence > 0 for a in part]) == pytest.approx(whole, abs=0.06)


def _weights(rng, dim=12, hidden=16, p_in=0.0, p=0.0) -> HeadWeights:
    return HeadWeights(rng.normal(0, 0.1, dim).astype(np.float32), rng.uniform(0.5, 1.5, dim).astype(np.float32),
                       rng.normal(0, 0.5, (dim, hidden)).astype(np.float32), rng.normal(0, 0.1, hidden).astype(np.float32),
                       rng.normal(0, 0.5, (hidden, 2)).astype(np.float32), rng.normal(0, 0.1, 2).astype(np.float32),
                       p_in, p)


def _run(model, x):
    s = model if isinstance(model, ort.InferenceSession) else ort.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"])
    return s.run(["va", "va_var"], {"embedding": x.astype(np.float32)})


def test_head_graph_without_dropout_is_the_head_and_with_it_draws_fresh_samples_in_one_call():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 12)).astype(np.float32)
    w = _weights(rng)
    va, var = _run(head_graph(w, samples=8), x)
    assert va.shape == (5, 2) and var.shape == (5, 2)
    np.testing.assert_allclose(va, numpy_head(w, x), atol=1e-5)
    np.testing.assert_allclose(var, 0.0, atol=1e-9)

    w.dropout_in, w.dropout = 0.1, 0.3
    session = ort.InferenceSession(head_graph(w, samples=64).SerializeToString(), providers=["CPUExecutionProvider"])
    (va1, var1), (va2, _) = _run(session, x), _run(session, x)
    assert (var1 > 1e-4).all()                        # dropout samples disagree: an uncertainty
    assert not np.allclose(va1, va2)                  # fresh masks on every call of one session
    # inverted dropout keeps the expected pre-activation: the MC mean stays near the plain head
    big = head_graph(w, samples=4096)
    va_big, _ = _run(big, x)
    assert np.abs(va_big - numpy_head(w, x)).mean() < 0.35 * np.abs(numpy_head(w, x)).mean() + 0.05


def _toy(n, dim, rng):
    x = rng.normal(size=(n, dim))
    y = np.tanh(np.stack([x[:, 0] - 0.5 * x[:, 1], x[:, 2]], 1) / 2)
    return x, y


def test_training_learns_restores_the_best_epoch_and_resumes_to_the_same_weights(tmp_path):
    rng = np.random.default_rng(1)
    tx, ty = _toy(400, 10, rng)
    vx, vy = _toy(100, 10, rng)
    cfg = HeadConfig(hidden=32, max_epochs=12, patience=50, batch=32, mc_samples=8)
    lines: list[str] = []
    full, hist = train_head(tx, ty, vx, vy, cfg, tmp_path / "a.pt", "fp", lines.append)
    assert len(hist) == 12 and hist[-1]["val_loss"] < hist[0]["val_loss"]
    best = int(np.argmin([h["val_loss"] for h in hist]))
    assert f"validation loss {hist[best]['val_loss']:.4f}" in lines[-1]
    mse = np.mean((numpy_head(full, vx) - vy) ** 2)
    assert mse < 0.5 * np.mean((vy - vy.mean(0)) ** 2)

    def stop(epoch):
        if epoch == 5:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_head(tx, ty, vx, vy, cfg, tmp_path / "b.pt", "fp", lambda s: None, stop)
    lines = []
    resumed, hist2 = train_head(tx, ty, vx, vy, cfg, tmp_path / "b.pt", "fp", lines.append)
    assert any("resuming" in s and "after epoch 5" in s for s in lines)
    assert len(hist2) == 12
    np.testing.assert_allclose(resumed.w1, full.w1, atol=1e-6)
    np.testing.assert_allclose(resumed.w2, full.w2, atol=1e-6)
    # other data: the state is not reused
    lines = []
    train_head(tx, ty, vx, vy, cfg, tmp_path / "b.pt", "other", lines.append)
    assert any("starting afresh" in s for s in lines)
