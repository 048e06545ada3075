"""The learning side of the command line: evaluation against human labels, training, backbone export.

    moodsic-live eval faces DIR --labels CSV        the face expert on labelled face photos
    moodsic-live eval findingemo ROOT [--split test] scene / face / fused on FindingEmo's images
    moodsic-live eval veatic ROOT                   perceive -> stabilise on VEATIC's videos
    moodsic-live eval music ROOT                    audio-derived V/A on a DEAM-layout library
    moodsic-live train scene --findingemo ROOT --backbone FILE.onnx [--out FILE.onnx]
    moodsic-live models export-backbone --kind clip|dinov2 --from PATH_OR_NAME --out FILE.onnx

Training and export need the optional extra: ``pip install -e '.[train]'`` (torch, transformers).
Reports print as a markdown table, or as one JSON object with ``--json``.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from moodsic_live import shutdown
from moodsic_live.errors import MoodsicError

Say = Callable[[str], None]


def add_learning_commands(sub, models_sub, common: Callable, perceive_flags: Callable) -> None:
    ev = sub.add_parser("eval", help="measure the estimates against human labels")
    esub = ev.add_subparsers(dest="eval_command", required=True)
    ef = esub.add_parser("faces", help="the face expert on labelled face photos (FER-style labels)",
                         description="Class accuracy (overall, macro, per class), confusion matrix and valence "
                                     "sign agreement of the face expert on a folder of labelled face photos.")
    ef.add_argument("root", type=Path, metavar="DIR", help="the photos (paths in the CSV are relative to it)")
    ef.add_argument("--labels", type=Path, help="CSV with columns file,emotion (default: DIR/labels.csv)")
    fe = esub.add_parser("findingemo", help="scene, face and fused estimates on FindingEmo's images",
                         description="V/A MAE (FindingEmo and reference units), Pearson, Spearman and CCC per "
                                     "dimension for scene only, face only (with face coverage) and fused, against "
                                     "a constant median baseline, on a split of FindingEmo (the training split).")
    fe.add_argument("root", type=Path, metavar="ROOT", help="the folder with Run_1/, Run_2/ and the annotations")
    fe.add_argument("--split", default="test", choices=["train", "val", "test", "all"])
    fe.add_argument("--annotations", type=Path, help="the annotation file (default: ROOT/annotations_single.ann)")
    fe.add_argument("--limit", type=int, default=0, help="only the first N images of the split (0: all)")
    ve = esub.add_parser("veatic", help="perceive -> stabilise on VEATIC's annotated videos",
                         description="Per video and overall: MAE, Spearman and CCC of valence and arousal, raw and "
                                     "stabilised, aligned to the annotated frames; face coverage.")
    ve.add_argument("root", type=Path, metavar="ROOT", help="the folder with videos/ and rating_averaged/")
    ve.add_argument("--videos", nargs="+", metavar="ID", help="only these video ids")
    mu = esub.add_parser("music", help="audio-derived V/A against DEAM-layout human annotations",
                         description="RMSE and Pearson r per dimension of the library analysis' valence/arousal "
                                     "against the human series (dynamic, 2 Hz) and song averages (static).")
    mu.add_argument("root", type=Path, metavar="ROOT", help="a library in DEAM's layout")
    mu.add_argument("--music-model", choices=["musicnn", "features"], help="V/A from audio (default: musicnn)")
    mu.add_argument("--workers", type=int, default=0, help="analysis processes (default: one per core)")
    for p in (ef, fe, ve, mu):
        common(p)
        if p is not mu:
            perceive_flags(p)
        p.add_argument("--json", action="store_true", help="the report as one JSON object")

    tr = sub.add_parser("train", help="train a learned expert (needs the [train] extra)")
    tsub = tr.add_subparsers(dest="train_command", required=True)
    ts = tsub.add_parser("scene", help="a scene expert on FindingEmo from an exported backbone",
                         description="Embed FindingEmo's images with the backbone (cached), train a V/A head with "
                                     "dropout (MSE + CCC, early stopping), calibrate its variance on the validation "
                                     "split and write ONE ONNX file (backbone + head, MC dropout inside) with its "
                                     "manifest, ready for --scene-model. Interrupt with Ctrl+C at any time; the same "
                                     "command resumes.")
    common(ts)
    ts.add_argument("--findingemo", type=Path, required=True, metavar="ROOT")
    ts.add_argument("--backbone", type=Path, required=True, metavar="FILE.onnx",
                    help="from `moodsic-live models export-backbone`")
    ts.add_argument("--annotations", type=Path, help="the annotation file (default: ROOT/annotations_single.ann)")
    ts.add_argument("--out", type=Path, help="the expert to write (default: MODELS_DIR/scene_findingemo.onnx)")
    ts.add_argument("--epochs", type=int, default=200, help="at most this many epochs (default 200)")
    ts.add_argument("--patience", type=int, default=20, help="stop after this many epochs without gain")
    ts.add_argument("--mc-samples", type=int, default=16, help="MC-dropout samples inside the model (default 16)")
    ts.add_argument("--provider", choices=["auto", "cpu", "cuda"], help="where the backbone runs (default auto)")
    ts.add_argument("--restart", action="store_true", help="discard a saved training state and start afresh")
    ts.add_argument("--json", action="store_true", help="the training report as one JSON object")

    xb = models_sub.add_parser("export-backbone", help="export an image backbone (CLIP, DINOv2) to ONNX",
                               description="Export an image backbone from weights already on disk (a Hugging Face "
                                           "folder or a cached model name; nothing is downloaded) to ONNX: input "
                                           "pixel_values [N, 3, H, W] (RGB, /255, the model's mean/std), output "
                                           "embedding [N, D], with FILE.json describing it. Needs the [train] extra.")
    common(xb)
    xb.add_argument("--kind", required=True, choices=["clip", "dinov2"])
    xb.add_argument("--from", dest="source", required=True, metavar="PATH_OR_NAME")
    xb.add_argument("--out", type=Path, required=True, metavar="FILE.onnx")
    xb.add_argument("--size", type=int, help="input size in pixels (default: the model's own)")


def _print(report: dict, as_json: bool, markdown: Callable[[dict], str]) -> None:
    print(json.dumps(report) if as_json else markdown(report), flush=True)


def cmd_eval(args: argparse.Namespace, config, make_perceiver: Callable, say: Say) -> int:
    kind = args.eval_command
    if kind == "music":
        from moodsic_live.evaluate import music

        model = args.music_model or config.library.music_model
        report = music.evaluate_music(args.root, config.paths.cache_dir / "analysis", music_model=model,
                                      workers=args.workers, say=say, config=config, progress=not args.json)
        _print(report.as_dict(), args.json, lambda _: music.markdown(report))
        return 0
    if kind == "veatic":
        from moodsic_live.evaluate import veatic

        report = veatic.evaluate_veatic(args.root, config, config.paths.models_dir, videos=args.videos, say=say)
        _print(report.as_dict(), args.json, lambda _: veatic.markdown(report))
        return 0
    if kind == "faces":
        from moodsic_live.evaluate.faces import evaluate_faces, markdown, read_labels

        items, skipped = read_labels(args.labels or args.root / "labels.csv", args.root)
        for line in skipped:
            say(f"skipped {line}")
        if not items:
            raise MoodsicError(f"no labelled photos found under {args.root}; check the CSV's file column")
        perceiver = make_perceiver(config)
        try:
            report = evaluate_faces(items, perceiver)
        finally:
            perceiver.close()
        report["skipped"] = len(skipped)
        _print(report, args.json, markdown)
        return 0
    from moodsic_live.evaluate.findingemo import evaluate_findingemo, markdown
    from moodsic_live.train.findingemo import read_findingemo

    data = read_findingemo(args.root, args.annotations)  # a wrong layout is said before any model loads
    perceiver = make_perceiver(config)
    try:
        report = evaluate_findingemo(args.root, perceiver, args.split, limit=args.limit, say=say, data=data)
    finally:
        perceiver.close()
    _print(report, args.json, markdown)
    return 0


def cmd_train(args: argparse.Namespace, config, say: Say) -> int:
    from moodsic_live.train.head import HeadConfig
    from moodsic_live.train.scene import train_scene

    for value, flag, low in ((args.epochs, "--epochs", 1), (args.patience, "--patience", 1),
                             (args.mc_samples, "--mc-samples", 1)):
        if value < low:
            raise MoodsicError(f"{flag} must be at least {low}, got {value}")
    if args.mc_samples > 64:
        raise MoodsicError(f"--mc-samples must be at most 64, got {args.mc_samples}")
    out = args.out or config.paths.models_dir / "scene_findingemo.onnx"
    cfg = HeadConfig(max_epochs=args.epochs, patience=args.patience, mc_samples=args.mc_samples)
    try:
        report = train_scene(args.findingemo, args.backbone, out, config.paths.cache_dir, cfg,
                             annotations=args.annotations, provider=args.provider or config.perceive.provider,
                             restart=args.restart, say=say)
    except KeyboardInterrupt as exc:      # Ctrl+C: 130; SIGTERM/SIGHUP (a requested stop): 0, the same line
        kept = "every finished epoch and embedding shard is saved; run the same command to resume"
        if shutdown.requested(exc):
            say(shutdown.line(exc, kept))
            return 0
        say(f"interrupted: {kept}")
        return 130
    if args.json:
        print(json.dumps(report), flush=True)
        return 0
    from moodsic_live.evaluate.calibration import calibration_markdown

    cal = report["calibration"]
    for part, title in (("validation", "fitted on"), ("test", "held out")):
        print(f"\nVariance calibration, {part} split ({title}): predicted variance by bin before and after, "
              "against the observed squared error (reference units):\n", flush=True)
        print(calibration_markdown({d: cal[d][part] for d in ("valence", "arousal")}), flush=True)
    return 0


def cmd_export_backbone(args: argparse.Namespace, say: Say) -> int:
    from moodsic_live.train.backbone import export_backbone

    try:
        export_backbone(args.kind, args.source, args.out, size=args.size, say=say)
    except KeyboardInterrupt as exc:
        kept = f"{args.out} was not written (the export writes it only when complete)"
        if shutdown.requested(exc):
            say(shutdown.line(exc, kept))
            return 0
        say(f"interrupted: {kept}")
        return 130
    return 0
