"""Learned scene expert benchmark: what a CLIP ViT-B/32 or DINOv2-S/14 scene expert (backbone + head,
MC dropout inside) costs per perceived frame, next to the built-in scene model; writes the "Learned scene
expert" section of docs/performance.md.

    python bench/scene_model.py [--frames 60] [--kinds clip dinov2] [--write]

No weights are downloaded: each backbone is built at its real size (the published configuration:
ViT-B/32 224 px, 88 M parameters; DINOv2 ViT-S/14 224 px, 22 M) with random weights, exported by
``moodsic-live models export-backbone``'s own code, given a head (``train/head.py``'s ONNX graph, 16
MC-dropout samples) and its manifest, and loaded through the expert contract exactly as
``--scene-model`` loads it. Timed: ``SceneExpert.read`` on 640x480 frames (the demo photos), which is
the whole scene step of a perception (resize, normalise, one ONNX call, calibration). Random weights
cost the same arithmetic as trained ones.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from machine import machine_line, write_section  # noqa: E402


def _backbone(kind: str, folder: Path):
    import torch
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    if kind == "clip":  # openai/clip-vit-base-patch32's vision tower
        model = CLIPVisionModelWithProjection(CLIPVisionConfig(
            hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
            image_size=224, patch_size=32, projection_dim=512))
    else:               # facebook/dinov2-small at 224 px
        model = Dinov2Model(Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
                                         intermediate_size=1536, image_size=224, patch_size=14))
    model.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def _expert(kind: str, work: Path) -> tuple[Path, int]:
    import onnx

    from moodsic_live.perceive.contract import FORMAT, write_manifest
    from moodsic_live.train.backbone import export_backbone, load_backbone_manifest
    from moodsic_live.train.head import HeadWeights, head_graph
    from moodsic_live.train.scene import _merge, _opset

    params = _backbone(kind, work / kind)
    onnx_path = work / f"{kind}-backbone.onnx"
    export_backbone(kind, work / kind, onnx_path, say=lambda s: None)
    bb = load_backbone_manifest(onnx_path)
    rng = np.random.default_rng(0)
    d, h = bb.dim, 256
    w = HeadWeights(np.zeros(d, np.float32), np.ones(d, np.float32), rng.normal(0, d ** -0.5, (d, h)).astype(np.float32),
                    np.zeros(h, np.float32), rng.normal(0, h ** -0.5, (h, 2)).astype(np.float32),
                    np.zeros(2, np.float32), 0.1, 0.3)
    backbone = onnx.load(str(onnx_path))
    merged = _merge(backbone, head_graph(w, 16, "head_embedding", _opset(backbone)), bb.output_name)
    out = work / f"scene_{kind}.onnx"
    onnx.save(merged, str(out))
    write_manifest(out.with_suffix(".json"), {
        "format": FORMAT, "name": out.stem, "expert": "scene", "input": bb.input_section(),
        "outputs": {"valence_arousal": {"name": "va", "scale": "reference"}, "variance": {"name": "va_var"}},
        "mc_dropout_samples": 0})
    return out, params


def _time(model: Path, frames: list, n: int, threads: int) -> tuple[float, float]:
    from moodsic_live.frames import Frame
    from moodsic_live.perceive.runtime import InferenceRuntime
    from moodsic_live.perceive.scene_expert import SceneExpert

    expert = SceneExpert(InferenceRuntime("cpu"), model)
    times = []
    for i in range(n + 5):
        frame = Frame(image=frames[i % len(frames)], t=i / 10, index=i)
        t0 = time.perf_counter()
        expert.read(frame, [])
        if i >= 5:  # warm-up
            times.append((time.perf_counter() - t0) * 1e3)
    return float(np.percentile(times, 50)), float(np.percentile(times, 95))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--kinds", nargs="+", default=["clip", "dinov2"], choices=["clip", "dinov2"])
    ap.add_argument("--write", action="store_true", help="write the section of docs/performance.md")
    args = ap.parse_args()
    from itertools import islice

    from moodsic_live.capture.demo import demo_frames

    frames = [f.image for f in islice(demo_frames(fps=1.0, scene_seconds=3.0), 0, 30, 3)]
    from moodsic_live.config import Config

    builtin = Config().paths.models_dir / "scene_affect.onnx"
    rows = []
    if builtin.is_file():
        p50, p95 = _time(builtin, frames, args.frames, 1)
        rows.append(("built-in scene model (colour statistics, motion, faces)", "–", "–", p50, p95))
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds:
            model, params = _expert(kind, Path(tmp))
            p50, p95 = _time(model, frames, args.frames, 0)
            label = {"clip": "CLIP ViT-B/32 + head, 16 MC samples", "dinov2": "DINOv2 ViT-S/14 + head, 16 MC samples"}
            rows.append((label[kind], f"{params / 1e6:.0f} M", f"{model.stat().st_size / 1e6:.0f}", p50, p95))
            print(f"{kind}: p50 {p50:.1f} ms, p95 {p95:.1f} ms", flush=True)
    body = [
        "## Learned scene expert", "",
        "A learned scene expert (`train scene`, docs/evaluation.md) runs a whole image backbone on every "
        "perceived frame. Timed: `SceneExpert.read` on 640x480 frames (resize, normalise, one ONNX call with "
        "the 16 MC-dropout samples inside, calibration), CPU provider, the backbones at their published sizes "
        "with random weights (same arithmetic as trained ones).",
        "", machine_line(), f"Command: `python bench/scene_model.py --frames {args.frames} --write`.", "",
        "| scene expert | backbone parameters | ONNX MB | p50 ms | p95 ms |", "|---|---:|---:|---:|---:|"]
    body += [f"| {name} | {params} | {mb} | {p50:.1f} | {p95:.1f} |" for name, params, mb, p50, p95 in rows]
    body += ["", "The scene expert runs beside detection and the face expert (its own thread), and the live "
             "worker starts at most `perceive.max_rate_hz` (10) perceptions a second, so a p95 above 100 ms lowers "
             "the analysed rate, never the camera preview or the audio; the stabiliser's 4 s time constant needs "
             "far less than 10 a second. The CUDA provider was not measured: no GPU was lent to this session."]
    text = "\n".join(body)
    print(text)
    if args.write:
        write_section("Learned scene expert", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
