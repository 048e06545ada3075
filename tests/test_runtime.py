"""Which provider really runs, said once, without ONNX Runtime's CUDA error spam."""

import pytest

from moodsic_live.errors import ProviderError
from moodsic_live.perceive.runtime import InferenceRuntime


def _has_cuda() -> bool:
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return False
    rt = InferenceRuntime("auto")
    return rt.provider == "CUDA"


def test_auto_reports_the_provider_that_really_runs(models_dir, capfd):
    rt = InferenceRuntime("auto")
    s1 = rt.session(models_dir / "face_fer2013.onnx")
    s2 = rt.session(models_dir / "scene_affect.onnx")
    assert rt.provider in ("CPU", "CUDA")
    real = s1.get_providers()[0]
    assert real == ("CUDAExecutionProvider" if rt.provider == "CUDA" else "CPUExecutionProvider")
    assert s2.get_providers()[0] == real
    err = capfd.readouterr().err
    assert "Failed to load library" not in err and "[E:onnxruntime" not in err
    if rt.provider == "CPU":
        assert "CPU (" in rt.note


def test_cuda_requested_without_cuda_is_one_clear_error(models_dir):
    rt = InferenceRuntime("cuda")
    try:
        rt.session(models_dir / "scene_affect.onnx")
    except ProviderError as exc:
        assert "CUDA was requested but is not available" in str(exc) and "--provider auto" in str(exc)
    else:
        assert rt.provider == "CUDA"  # a machine with a working GPU


def test_cpu_choice_and_bad_choice(models_dir):
    rt = InferenceRuntime("cpu")
    assert rt.session(models_dir / "scene_affect.onnx").get_providers() == ["CPUExecutionProvider"]
    assert rt.provider == "CPU"
    with pytest.raises(ProviderError):
        InferenceRuntime("tpu")
