"""The stabiliser: per-frame V/A estimates in, a steady value the music can follow out.

What and why. The perceive step emits a fused estimate (valence, arousal and a variance per
dimension) at whatever rate the camera and the models manage (about 5 Hz on a CPU, up to 30 Hz
on a GPU). Frame to frame it is noisy, and sometimes it is plainly unreliable (face turned
away, occluded, badly lit). Music must not follow that noise, so each dimension goes through:

1. **A time-constant EMA.** With ``tau = time_constant_s`` and ``dt`` the *real* time since the
   previous integrated estimate, the new estimate gets the weight ``w = 1 - exp(-dt / tau)``
   (:func:`ema_weight`) and ``ema += w * (x - ema)``. This is the exact solution of the
   first-order low-pass ``tau * dy/dt = x - y`` for an input held at each new value over the
   interval before it, so the smoothing is a property of *time*, not of the sample count: a
   step reaches 63 % (``1 - 1/e``) after ``tau`` seconds at 5 Hz and at 30 Hz alike, and
   irregular sampling gives the same curve. (A fixed weight per sample, like the old seed's
   ``alpha = 0.7``, smooths six times less in seconds at 30 Hz than at 5 Hz.) Weights compose:
   two steps of ``dt`` equal one of ``2 dt``. ``dt <= 0`` (a repeated or out-of-order time)
   gives the weight 0, so the state does not move and the clock never runs backwards; a huge
   ``dt`` gives a weight near 1 (the old state is stale); the very first estimate initialises
   the state (an empty state is an infinite gap, weight exactly 1).

2. **An uncertainty gate with hysteresis.** When a dimension's fused variance rises above
   ``gate_close_var`` its output is *held* at the last stable value; it reopens only when the
   variance falls below ``gate_open_var`` (< ``gate_close_var``), so a variance hovering around
   one threshold does not make the gate chatter. A non-finite value or variance counts as
   infinitely uncertain.

   *While gated, the EMA freezes*: a gated estimate is treated exactly as if it had not
   arrived (like a camera stall), neither its value nor its time is integrated. Why not keep
   integrating behind the held output? The gated estimates are by definition the ones judged
   untrustworthy: with the face lost the fused estimate is the scene expert's guess or the
   neutral prior, and integrating it would drag the state towards that prior, so on reopening
   the music would first swing towards the very values the gate was there to ignore. Frozen,
   the state only ever contains trusted evidence. Because the EMA's clock stops with it, the
   first trusted estimate after a gap gets the weight of the whole gap (``1 - exp(-gap/tau)``):
   after a short dropout the old state mostly survives, after a long one (the room may have
   changed) it is mostly replaced, exactly as after a gap with no estimates at all.

3. **A glide on reopening.** The held value and the EMA may then differ a lot, so the output
   never jumps to the EMA: over ``glide_s`` seconds from the reopening it blends
   ``out = held + s(u) * (ema - held)``, ``u = (t - t_reopen) / glide_s``, with the smoothstep
   ``s(u) = 3u^2 - 2u^3`` (zero slope at both ends, at most ``1.5 / glide_s`` per second). The
   EMA keeps integrating during the glide, and the blend targets the live EMA. Should the gate
   close again mid-glide, the value held is the blended output of that moment, so the output
   is continuous under every sequence of gate events. ``glide_s = 0`` switches the glide off.

Before any trusted estimate has arrived (the first estimates are all gated) the output holds
the first estimate's value: there is nothing better, and it will glide away once trust comes.

Variance reported. ``Stable.valence_var``/``arousal_var`` is the EMA (same ``tau``, same
real-time weights) of the *input* variance, integrated on every estimate, gated or not: the
variance is the reliable signal about reliability, so it is never gated. It says how uncertain
the input has recently been (it rises while a dimension is held); it is not the (much smaller)
variance of the smoothed mean. Input variances are clipped to [0, 1] (1 is the largest possible
variance of a value in [-1, 1]; NaN counts as 1) so one broken estimate cannot poison it.

Everything here is pure: no threads, clocks or globals; the caller passes the time ``t`` in
seconds (any monotonic clock). The output is a frozen dataclass, safe to hand across threads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from moodsic_live.config import StabiliseConfig
from moodsic_live.errors import MoodsicError
from moodsic_live.perceive.estimate import VA

MAX_VAR = 1.0  # largest variance of a value in [-1, 1] (half the mass at each end)


def ema_weight(dt: float, tau: float) -> float:
    """Weight of a new estimate arriving ``dt`` seconds after the previous one: ``1 - exp(-dt/tau)``.

    ``dt <= 0`` or NaN gives 0 (no update); ``dt = inf`` gives 1; ``tau <= 0`` means no smoothing
    (weight 1 for any ``dt > 0``). Computed with ``expm1`` so tiny ``dt/tau`` stays accurate.
    """
    if not dt > 0.0:          # also catches NaN
        return 0.0
    if not tau > 0.0 or math.isinf(dt):
        return 1.0
    return -math.expm1(-dt / tau)


def smoothstep(u: float) -> float:
    """``3u^2 - 2u^3`` on [0, 1] (clipped outside): 0 -> 1 with zero slope at both ends."""
    if not u > 0.0:           # also catches NaN
        return 0.0
    if u >= 1.0:
        return 1.0
    return u * u * (3.0 - 2.0 * u)


def validate_config(config: StabiliseConfig) -> None:
    """Raise a one-line :class:`MoodsicError` naming the setting when ``config`` cannot work."""
    tau, close, open_, glide = (config.time_constant_s, config.gate_close_var,
                                config.gate_open_var, config.glide_s)
    for key, value in (("time_constant_s", tau), ("gate_close_var", close),
                       ("gate_open_var", open_), ("glide_s", glide)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise MoodsicError(f"config stabilise.{key}: expected a finite number, got {value!r}")
    if tau <= 0:
        raise MoodsicError(f"config stabilise.time_constant_s: must be above 0 seconds, got {tau!r}")
    if glide < 0:
        raise MoodsicError(f"config stabilise.glide_s: must be 0 (no glide) or more seconds, got {glide!r}")
    if open_ < 0:
        raise MoodsicError(f"config stabilise.gate_open_var: must be 0 or more, got {open_!r}")
    if not open_ < close:
        raise MoodsicError(f"config stabilise.gate_open_var ({open_!r}) must be below stabilise.gate_close_var "
                           f"({close!r}): the gate closes above the one and reopens below the other")


@dataclass(frozen=True, slots=True)
class Stable:
    """One stabilised estimate (reference space [-1, 1]); see the module docstring for the maths.

    ``valence``/``arousal``: what the music should follow (EMA, held while gated, gliding
    after a reopening). ``*_raw``: the input estimate as received. ``*_var``: EMA of the input
    variance. ``gated_*``: the dimension's gate is closed (its output is held).
    """

    t: float
    valence: float
    arousal: float
    valence_raw: float
    arousal_raw: float
    valence_var: float
    arousal_var: float
    gated_valence: bool
    gated_arousal: bool

    def as_va(self) -> VA:
        """The stable point as a :class:`VA` (variances = the reported EMA of the input variance)."""
        return VA(self.valence, self.arousal, self.valence_var, self.arousal_var)

    def as_dict(self) -> dict[str, float | bool]:
        return {"t": round(self.t, 3), "valence": round(self.valence, 4), "arousal": round(self.arousal, 4),
                "valence_raw": round(self.valence_raw, 4), "arousal_raw": round(self.arousal_raw, 4),
                "valence_var": round(self.valence_var, 4), "arousal_var": round(self.arousal_var, 4),
                "gated_valence": self.gated_valence, "gated_arousal": self.gated_arousal}


class _Channel:
    """The state of one dimension: EMA (value and clock), variance EMA, gate, glide."""

    __slots__ = ("ema", "ema_t", "var_ema", "gated", "held", "glide_from", "glide_t", "out")

    def __init__(self) -> None:
        self.ema = 0.0
        self.ema_t = -math.inf            # empty state = infinite gap: the first weight is 1
        self.var_ema = 0.0
        self.gated = False
        self.held = 0.0
        self.glide_from = 0.0
        self.glide_t: float | None = None  # time of the reopening while gliding
        self.out: float | None = None      # last output; None before the first estimate

    def update(self, t: float, x: float, var: float, var_weight: float, cfg: StabiliseConfig) -> float:
        # Variance EMA: every estimate, gated or not.
        v = min(max(var, 0.0), MAX_VAR) if not math.isnan(var) else MAX_VAR
        self.var_ema += var_weight * (v - self.var_ema)

        # Gate with hysteresis; anything non-finite is infinitely uncertain.
        g = var if (math.isfinite(x) and math.isfinite(var) and var >= 0.0) else math.inf
        if not self.gated and g > cfg.gate_close_var:
            self.gated = True
            self.held = self.out if self.out is not None else (x if math.isfinite(x) else 0.0)
            self.glide_t = None
        elif self.gated and g < cfg.gate_open_var:
            self.gated = False
            self.glide_from, self.glide_t = self.held, t

        # EMA: trusted estimates only, weighted by the real time since the last trusted one.
        if not self.gated:
            self.ema += ema_weight(t - self.ema_t, cfg.time_constant_s) * (x - self.ema)
            self.ema_t = max(self.ema_t, t)

        if self.gated:
            out = self.held
        elif self.glide_t is not None:
            u = (t - self.glide_t) / cfg.glide_s if cfg.glide_s > 0 else 1.0
            if u >= 1.0:
                self.glide_t = None
                out = self.ema
            else:
                out = self.glide_from + smoothstep(u) * (self.ema - self.glide_from)
        else:
            out = self.ema
        self.out = out
        return out


class Stabiliser:
    """Stateful per-dimension EMA + uncertainty gate + glide. Not thread-safe: one owner.

    >>> s = Stabiliser(StabiliseConfig())
    >>> s.update(0.0, VA(0.5, -0.2, 0.01, 0.01)).valence   # the first estimate initialises
    0.5
    """

    def __init__(self, config: StabiliseConfig | None = None) -> None:
        self.config = config if config is not None else StabiliseConfig()
        validate_config(self.config)
        self.reset()

    def reset(self) -> None:
        """Forget everything: the next estimate initialises the state again."""
        self._valence = _Channel()
        self._arousal = _Channel()
        self._last_t = -math.inf

    def update(self, t: float, estimate: VA) -> Stable:
        """Integrate the estimate observed at time ``t`` (seconds) and return the stable output."""
        t = float(t)
        if not math.isfinite(t):
            raise ValueError(f"Stabiliser.update: the time must be a finite number of seconds, got {t!r}")
        var_weight = ema_weight(t - self._last_t, self.config.time_constant_s)
        self._last_t = max(self._last_t, t)
        cfg = self.config
        v = self._valence.update(t, float(estimate.valence), float(estimate.valence_var), var_weight, cfg)
        a = self._arousal.update(t, float(estimate.arousal), float(estimate.arousal_var), var_weight, cfg)
        return Stable(t=t, valence=v, arousal=a,
                      valence_raw=float(estimate.valence), arousal_raw=float(estimate.arousal),
                      valence_var=self._valence.var_ema, arousal_var=self._arousal.var_ema,
                      gated_valence=self._valence.gated, gated_arousal=self._arousal.gated)
