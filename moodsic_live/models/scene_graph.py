"""The default scene expert, "affective scene statistics", written as an ONNX graph.

No pretrained image backbone can be had offline, so the default scene expert reads the
emotional tone of a frame from statistics that psychology relates to affect:

- Brightness (mean Rec. 709 luma) and saturation (mean HSV saturation), mapped to
  pleasure and arousal with the standardised regression coefficients of
  Valdez, P. & Mehrabian, A. (1994). Effects of color on emotions. J. Exp. Psychol.:
  General 123(4), 394-409:  Pleasure = .69 B + .22 S,  Arousal = -.31 B + .60 S.
  B and S are standardised against typical photographs (``B_MEAN/B_SD``, ``S_MEAN/S_SD``:
  our reference statistics, an assumption stated here, not part of the paper).
- Motion energy between consecutive frames (mean absolute luma change per second):
  arousal rises with motion activity, as in Hanjalic, A. & Xu, L.-Q. (2005). Affective
  video content representation and modeling. IEEE Trans. Multimedia 7(1), 143-154.
- The number and mean expression of all faces in view (group mood): the more faces,
  the more the group's mean expression counts (weight n / (n + 2)).
- Warmth (mean R - B), colourfulness (Hasler, D. & Suesstrunk, S. (2003). Measuring
  colourfulness in natural images. Proc. SPIE 5007) and RMS contrast are reported as
  features and set how much the colour evidence is worth: a flat, grey frame carries
  little information, so its variance stays near the prior.

The variance is honest: colour explains little of how a scene feels (at most
``COLOUR_R2`` of the variance), so with colour alone it stays near the prior variance of
scenes (0.25 in reference units, i.e. a standard deviation of 0.5 on [-1, 1]), and the
colour predictions are scaled to match that R^2 rather than swing across the whole
range; motion lowers the arousal variance, faces in view lower both.

Inputs: ``frame`` and ``previous`` [N, 3, H, W] RGB in [0, 1]; ``context`` [N, 5] =
(has_previous, dt_seconds, face_count, face_mean_valence, face_mean_arousal).
Outputs: ``va`` [N, 2], ``va_var`` [N, 2], ``features`` [N, 7] in the order of
``FEATURES``.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from moodsic_live.models.keras_onnx import OPSET

INPUT_SIZE = (96, 128)  # (H, W): enough for global colour statistics and motion
FEATURES = ("brightness", "saturation", "warmth", "colourfulness", "contrast", "motion", "faces")

B_MEAN, B_SD = 0.45, 0.15
S_MEAN, S_SD = 0.30, 0.15
PLEASURE = (0.69, 0.22)  # Valdez & Mehrabian (1994), (brightness, saturation)
AROUSAL = (-0.31, 0.60)
MOTION_RATE_SCALE = 0.5  # luma change per second at which activity reaches tanh(1)
HS_EXTREMELY_COLOURFUL = 109.0 / 255.0  # Hasler & Suesstrunk's top category, in [0, 1] units
PRIOR_VAR = 0.25  # variance of how scenes feel, reference units (SD 0.5)
COLOUR_R2 = 0.15  # the most variance colour evidence may explain
# Predictions must agree with that R^2: the standardised prediction b.z (SD |b| for
# independent unit z) is scaled so its spread is sqrt(R^2) x the SD of scene ratings.
GAIN_V = (PRIOR_VAR ** 0.5) * COLOUR_R2 ** 0.5 / float(np.hypot(*PLEASURE))
GAIN_A = (PRIOR_VAR ** 0.5) * COLOUR_R2 ** 0.5 / float(np.hypot(*AROUSAL))
MOTION_R2 = 0.25  # the most arousal variance motion may explain
FACE_VAR = 0.08  # variance of one face's expression as evidence of the group's mood


class _G:
    def __init__(self):
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def _name(self, base: str) -> str:
        self.n += 1
        return f"{base}_{self.n}"

    def c(self, value, dtype=np.float32) -> str:
        name = self._name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op: str, *inputs: str, out: str | None = None, **attrs) -> str:
        out = out or self._name(op.lower())
        self.nodes.append(helper.make_node(op, list(inputs), [out], **attrs))
        return out

    def ops(self, op: str, inputs: list[str], n_out: int, **attrs) -> list[str]:
        outs = [self._name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, **attrs))
        return outs

    # small vocabulary
    def add(self, a, b): return self.op("Add", a, b)
    def sub(self, a, b): return self.op("Sub", a, b)
    def mul(self, a, b): return self.op("Mul", a, b)
    def div(self, a, b): return self.op("Div", a, b)
    def mean(self, x, axes): return self.op("ReduceMean", x, axes=axes, keepdims=0)
    def clip01(self, x): return self.op("Clip", x, self.c(0.0), self.c(1.0))
    def lin(self, x, a, b): return self.add(self.mul(x, self.c(a)), self.c(b))


def _luma(g: _G, rgb: str) -> tuple[str, str, str, str]:
    r, gg, b = g.ops("Split", [rgb, g.c([1, 1, 1], np.int64)], 3, axis=1)
    y = g.add(g.add(g.mul(r, g.c(0.2126)), g.mul(gg, g.c(0.7152))), g.mul(b, g.c(0.0722)))
    return y, r, gg, b


def build_scene_model() -> onnx.ModelProto:
    g = _G()
    h, w = INPUT_SIZE
    sp = [1, 2, 3]  # channel + spatial axes of a [N, 1, H, W] tensor

    y, r, gg, b = _luma(g, "frame")
    y_prev, *_ = _luma(g, "previous")
    ctx = g.ops("Split", ["context", g.c([1, 1, 1, 1, 1], np.int64)], 5, axis=1)
    has_prev, dt, n_faces, face_v, face_a = (g.op("Squeeze", t, g.c([1], np.int64)) for t in ctx)

    brightness = g.mean(y, sp)
    mx = g.op("ReduceMax", "frame", axes=[1], keepdims=1)
    mn = g.op("ReduceMin", "frame", axes=[1], keepdims=1)
    saturation = g.mean(g.div(g.sub(mx, mn), g.add(mx, g.c(1e-6))), sp)
    warmth = g.mean(g.sub(r, b), sp)
    rg = g.sub(r, gg)
    yb = g.sub(g.mul(g.add(r, gg), g.c(0.5)), b)

    def mean_and_var(t):
        m = g.mean(t, sp)
        return m, g.op("Relu", g.sub(g.mean(g.mul(t, t), sp), g.mul(m, m)))

    m_rg, v_rg = mean_and_var(rg)
    m_yb, v_yb = mean_and_var(yb)
    colourfulness = g.add(g.op("Sqrt", g.add(v_rg, v_yb)),
                          g.mul(g.op("Sqrt", g.add(g.mul(m_rg, m_rg), g.mul(m_yb, m_yb))), g.c(0.3)))
    _, y_var = mean_and_var(y)
    contrast = g.op("Sqrt", y_var)
    motion = g.mul(g.mean(g.op("Abs", g.sub(y, y_prev)), sp), has_prev)

    # Valdez & Mehrabian on standardised brightness and saturation.
    zb = g.lin(brightness, 1.0 / B_SD, -B_MEAN / B_SD)
    zs = g.lin(saturation, 1.0 / S_SD, -S_MEAN / S_SD)
    pleasure = g.add(g.mul(zb, g.c(PLEASURE[0])), g.mul(zs, g.c(PLEASURE[1])))
    arousal_c = g.add(g.mul(zb, g.c(AROUSAL[0])), g.mul(zs, g.c(AROUSAL[1])))
    v_colour = g.op("Tanh", g.mul(pleasure, g.c(GAIN_V)))
    a_colour = g.op("Tanh", g.mul(arousal_c, g.c(GAIN_A)))

    # Motion activity (Hanjalic & Xu): rate of luma change, 0 (still) .. 1 (very active).
    rate = g.div(motion, g.op("Max", dt, g.c(1.0 / 60.0)))
    activity = g.op("Tanh", g.mul(rate, g.c(1.0 / MOTION_RATE_SCALE)))
    a_motion = g.lin(activity, 2.0, -1.0)
    half_prev = g.mul(has_prev, g.c(0.5))
    a_scene = g.add(g.mul(a_colour, g.sub(g.c(1.0), half_prev)), g.mul(a_motion, half_prev))

    # Evidence strength of the colour statistics, 0 (flat grey) .. 1 (contrasty, colourful).
    e_colour = g.mul(g.add(g.clip01(g.mul(contrast, g.c(1.0 / 0.2))),
                           g.clip01(g.mul(colourfulness, g.c(1.0 / HS_EXTREMELY_COLOURFUL)))), g.c(0.5))
    var_v_scene = g.mul(g.lin(e_colour, -COLOUR_R2, 1.0), g.c(PRIOR_VAR))
    var_a_scene = g.mul(g.sub(g.lin(e_colour, -COLOUR_R2, 1.0), g.mul(has_prev, g.c(MOTION_R2))), g.c(PRIOR_VAR))

    # Group mood: faces in view pull the scene towards their mean expression.
    w_f = g.div(n_faces, g.add(n_faces, g.c(2.0)))
    one_minus = g.sub(g.c(1.0), w_f)
    var_faces = g.div(g.c(FACE_VAR), g.op("Max", n_faces, g.c(1.0)))

    def blend(scene, faces):
        return g.add(g.mul(scene, one_minus), g.mul(faces, w_f))

    v = blend(v_colour, face_v)
    a = blend(a_scene, face_a)
    var_v = blend(var_v_scene, var_faces)
    var_a = blend(var_a_scene, var_faces)

    def stack(items, out):
        cols = [g.op("Unsqueeze", t, g.c([1], np.int64)) for t in items]
        return g.op("Concat", *cols, out=out, axis=1)

    stack([v, a], "va")
    stack([var_v, var_a], "va_var")
    stack([brightness, saturation, warmth, colourfulness, contrast, motion, n_faces], "features")

    img = ["N", 3, h, w]
    graph = helper.make_graph(
        g.nodes, "scene_affect",
        [helper.make_tensor_value_info("frame", TensorProto.FLOAT, img),
         helper.make_tensor_value_info("previous", TensorProto.FLOAT, img),
         helper.make_tensor_value_info("context", TensorProto.FLOAT, ["N", 5])],
        [helper.make_tensor_value_info("va", TensorProto.FLOAT, ["N", 2]),
         helper.make_tensor_value_info("va_var", TensorProto.FLOAT, ["N", 2]),
         helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", len(FEATURES)])],
        initializer=g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="moodsic-live",
                              doc_string="Affective scene statistics (see moodsic_live/models/scene_graph.py)")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model
