"""Stabilise step: time-constant EMA, uncertainty gate with hysteresis, glide, run metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from moodsic_live.config import StabiliseConfig
from moodsic_live.errors import MoodsicError
from moodsic_live.perceive.estimate import VA
from moodsic_live.stabilise.metrics import (RunMetrics, dwell_stats, dwell_times, gating_share, jitter,
                                            jitter_reduction_pct, response_time, switches_per_minute)
from moodsic_live.stabilise.stabiliser import Stabiliser, Stable, ema_weight, smoothstep, validate_config

TAU = 4.0
SURE = 0.01     # variance well below the gate
UNSURE = 0.2    # above gate_close_var (0.12 in these tests)
BETWEEN = 0.10  # between gate_open_var (0.08) and gate_close_var


def _cfg(**kw) -> StabiliseConfig:
    """The tests' thresholds, independent of the shipped defaults."""
    return StabiliseConfig(**{"time_constant_s": TAU, "gate_close_var": 0.12, "gate_open_var": 0.08, **kw})


def run(times, valence, arousal=None, v_var=SURE, a_var=SURE, config: StabiliseConfig | None = None) -> list[Stable]:
    """Feed a series through a fresh stabiliser; scalars broadcast."""
    n = len(times)
    arousal = np.zeros(n) if arousal is None else arousal
    v_var, a_var = np.broadcast_to(v_var, (n,)), np.broadcast_to(a_var, (n,))
    s = Stabiliser(config or _cfg())
    return [s.update(float(t), VA(float(v), float(a), float(vv), float(av)))
            for t, v, a, vv, av in zip(times, valence, arousal, v_var, a_var)]


def values(out: list[Stable], dim: str = "valence") -> np.ndarray:
    return np.array([getattr(o, dim) for o in out])


# --- EMA weight -------------------------------------------------------------------------------------------------

def test_ema_weight_edges_and_composition():
    assert ema_weight(TAU, TAU) == pytest.approx(1 - math.exp(-1))
    assert ema_weight(0.0, TAU) == 0.0 and ema_weight(-1.0, TAU) == 0.0 and ema_weight(math.nan, TAU) == 0.0
    assert ema_weight(math.inf, TAU) == 1.0 and ema_weight(1e9, TAU) == 1.0
    assert ema_weight(0.1, 0.0) == 1.0                      # no smoothing
    assert 0 < ema_weight(1e-12, TAU) == pytest.approx(1e-12 / TAU, rel=1e-6)  # expm1: accurate for tiny dt
    # two steps of dt keep (1-w)^2 of the old state, exactly like one step of 2 dt
    w1, w2 = ema_weight(0.2, TAU), ema_weight(0.4, TAU)
    assert 1 - (1 - w1) ** 2 == pytest.approx(w2, rel=1e-12)


def test_first_estimate_initialises_and_bad_times_do_not_move_the_state():
    s = Stabiliser(_cfg())
    first = s.update(10.0, VA(0.5, -0.3, SURE, 0.02))
    assert (first.valence, first.arousal) == (0.5, -0.3)
    assert (first.valence_var, first.arousal_var) == (SURE, 0.02)
    assert first.valence_raw == 0.5 and not first.gated_valence and not first.gated_arousal
    assert s.update(10.0, VA(-1.0, 1.0, SURE, SURE)).valence == 0.5   # dt = 0: weight 0
    assert s.update(9.0, VA(-1.0, 1.0, SURE, SURE)).valence == 0.5    # out of order: weight 0
    # the clock did not run backwards: the next step is 10 -> 10 + tau, weight 1 - 1/e
    assert s.update(10.0 + TAU, VA(-0.5, -0.3, SURE, SURE)).valence == pytest.approx(0.5 - (1 - math.exp(-1)))
    assert s.update(1e9, VA(0.9, 0.9, SURE, SURE)).valence == pytest.approx(0.9)  # huge gap: weight -> 1
    s.reset()
    assert s.update(0.0, VA(-0.2, 0.1, SURE, SURE)).valence == -0.2            # reset: initialises again
    with pytest.raises(ValueError):
        s.update(math.nan, VA(0.0, 0.0, SURE, SURE))


# --- the time-constant property ---------------------------------------------------------------------------------

@pytest.mark.parametrize("rate_hz", [5.0, 30.0])
def test_step_reaches_63_percent_after_tau_at_any_rate(rate_hz):
    step_t = 2.0
    t = np.arange(0, round(30 * rate_hz) + 1) / rate_hz
    out = values(run(t, np.where(t >= step_t - 1e-9, 1.0, 0.0)))
    period = 1.0 / rate_hz
    reached = t[np.argmax(out >= 1 - math.exp(-1))] - step_t  # first sample at or past 63 %
    assert abs(reached - TAU) <= period + 1e-9
    # A new value counts over the interval before its sample, so the sampled curve is the exact
    # low-pass response to a step one period earlier: 63 % at tau - period, never later than tau.
    measured = response_time(t, out, step_t, start=0.0, end=1.0)
    assert TAU - period - 1e-6 <= measured <= TAU
    assert np.allclose(out[t >= step_t], 1 - np.exp(-(t[t >= step_t] - (step_t - period)) / TAU))


def test_5hz_and_30hz_agree_at_common_times():
    step_t = 2.0
    t5, t30 = np.arange(0, 151) / 5.0, np.arange(0, 901) / 30.0
    y5 = values(run(t5, np.where(t5 >= step_t - 1e-9, 1.0, 0.0)))
    y30 = values(run(t30, np.where(t30 >= step_t - 1e-9, 1.0, 0.0)))
    common = y30[::6]                                   # every 6th 30 Hz sample = the 5 Hz grid
    assert np.allclose(t30[::6], t5)
    diff = np.abs(y5 - common)
    # A new value counts from the previous sample, so the lead differs by at most one 5 Hz period
    # minus one 30 Hz period: the gap is bounded by that and shrinks exponentially.
    assert diff.max() <= ema_weight(1 / 5 - 1 / 30, TAU) + 1e-9
    assert diff[t5 >= step_t + TAU].max() < 0.016
    # A fixed weight per sample fails: tuned to tau at 5 Hz, the same weight at 30 Hz responds ~6x faster.
    def per_sample(y, alpha=ema_weight(0.2, TAU)):
        out, acc = [], y[0]
        for v in y:
            acc += alpha * (v - acc)
            out.append(acc)
        return np.array(out)
    r5 = response_time(t5, per_sample(np.where(t5 >= step_t - 1e-9, 1.0, 0.0)), step_t, start=0.0, end=1.0)
    r30 = response_time(t30, per_sample(np.where(t30 >= step_t - 1e-9, 1.0, 0.0)), step_t, start=0.0, end=1.0)
    assert r5 == pytest.approx(TAU - 0.2, abs=0.01) and r30 < TAU / 5


def test_irregular_sampling_matches_regular():
    rng = np.random.default_rng(7)
    signal = lambda t: 0.6 * np.sin(2 * np.pi * t / 25.0) + 0.2 * np.sin(2 * np.pi * t / 7.0)  # noqa: E731
    t_reg = np.arange(0, 601) / 10.0
    t_irr = np.concatenate([[0.0], np.cumsum(rng.uniform(0.03, 0.3, 600))])
    t_irr = t_irr[t_irr <= 60.0]
    y_reg = values(run(t_reg, signal(t_reg)))
    y_irr = values(run(t_irr, signal(t_irr)))
    assert len(t_irr) > 300
    late = t_irr >= 10.0                                # past the start-up transient
    diff = np.abs(np.interp(t_irr[late], t_reg, y_reg) - y_irr[late])
    assert diff.max() < 0.03
    # and the smoothing is real: the output is far from the raw signal
    assert np.abs(y_irr[late] - signal(t_irr[late])).max() > 0.3


# --- gating -----------------------------------------------------------------------------------------------------

def test_gate_hysteresis_per_dimension():
    t = np.arange(0, 121) / 10.0                       # 12 s at 10 Hz
    phase = np.select([t < 4, t < 6, t < 8], [0, 1, 2], 3)
    v_var = np.array([SURE, UNSURE, BETWEEN, 0.05])[phase]
    valence = np.array([0.2, -0.8, -0.8, 0.2])[phase]
    arousal = 0.5 * np.sin(t)                          # always sure: must follow its input, never gated
    out = run(t, valence, arousal, v_var=v_var, a_var=SURE)
    gated = np.array([o.gated_valence for o in out])
    v = values(out)

    assert not gated[phase == 0].any()
    assert gated[phase == 1].all()                     # above close: held
    assert gated[phase == 2].all()                     # between open and close: still held (hysteresis)
    assert not gated[phase == 3].any()                 # below open: reopened
    held = v[phase == 0][-1]
    assert np.all(v[(phase == 1) | (phase == 2)] == held)
    # the gated estimates (-0.8) never reach the EMA: after reopening nothing swings towards them
    assert v.min() >= 0.2 - 1e-9 and v[-1] == pytest.approx(0.2)

    assert not any(o.gated_arousal for o in out)      # per dimension: arousal is never held
    assert values(out, "arousal")[-1] != values(out, "arousal")[40]
    # the reported variance (EMA of the input variance) rises while gated, and no value ever does
    vv = np.array([o.valence_var for o in out])
    # after 2 s at 0.2: 0.01 + 0.19 * (1 - exp(-2 / tau)) = 0.085
    assert vv[phase == 1][-1] == pytest.approx(SURE + (UNSURE - SURE) * ema_weight(2.0, TAU), abs=1e-3)
    assert vv[0] == SURE and vv[-1] < vv[phase == 1][-1]
    assert np.all(np.array([o.valence_raw for o in out]) == valence)


def test_gate_flaps_near_one_threshold_do_not_chatter():
    # variance hovering around 0.12 (between 0.09 and 0.15): once closed, never reopens
    t = np.arange(0, 101) / 10.0
    v_var = np.where(t < 2, SURE, 0.12 + 0.03 * np.sign(np.sin(7 * t)))
    out = run(t, np.full_like(t, 0.3), v_var=v_var)
    gated = np.array([o.gated_valence for o in out])
    first = int(np.argmax(gated))
    assert gated[first:].all() and not gated[:first].any()


def test_first_estimates_gated_hold_the_first_value_then_glide():
    t = np.arange(0, 61) / 10.0
    v_var = np.where(t < 2, UNSURE, SURE)
    valence = np.where(t < 2, -0.4, 0.6)
    out = run(t, valence, v_var=v_var)
    v = values(out)
    assert out[0].gated_valence and np.all(v[t < 2] == -0.4)
    assert not out[-1].gated_valence and v[-1] == pytest.approx(0.6)
    assert np.abs(np.diff(v)).max() < 0.1              # glided up, no jump of 1.0


def test_no_jump_on_reopen():
    cfg = _cfg(glide_s=2.0)
    dt = 0.1
    t = np.arange(0, 401) * dt                         # 40 s at 10 Hz
    reopen_t = 30.0
    v_var = np.where((t >= 10) & (t < reopen_t - 1e-9), UNSURE, SURE)
    valence = np.where(t < 10, 0.5, -0.5)              # the room changed while the gate was closed
    out = run(t, valence, v_var=v_var, config=cfg)
    v = values(out)
    i = int(np.argmax(t >= reopen_t - 1e-9))
    assert out[i - 1].gated_valence and not out[i].gated_valence
    assert v[i] == pytest.approx(0.5)                  # the reopening step itself still shows the held value
    # the EMA has moved on (20 s gap = 5 tau): held and EMA differ by ~1.0
    ema_at_reopen = 0.5 + ema_weight(t[i] - t[np.argmax(t >= 10) - 1], TAU) * (-0.5 - 0.5)
    assert abs(ema_at_reopen - 0.5) > 0.95
    # bound per step: glide slope (smoothstep: <= 1.5 / glide_s per second) x |ema - held| (<= 1) x dt,
    # plus one EMA step (<= w(dt) x |x - ema| <= w(dt) x 1)
    bound = 1.5 / cfg.glide_s * dt * 1.0 + ema_weight(dt, TAU) * 1.0
    steps = np.abs(np.diff(v[i - 1:]))
    assert steps.max() <= bound + 1e-12
    assert steps.max() > 0.5 * 1.5 / cfg.glide_s * dt  # it did glide (not a frozen output)
    after = t >= reopen_t + cfg.glide_s
    assert np.allclose(v[after], -0.5, atol=1e-2)      # glide done: back on the (settled) EMA


def test_gate_closing_mid_glide_holds_the_blended_value():
    t = np.arange(0, 201) / 10.0
    phase = np.select([t < 5, t < 10, t < 11 - 1e-9], [0, 1, 2], 3)  # sure, unsure, sure (glide), unsure
    v_var = np.array([SURE, UNSURE, SURE, UNSURE])[phase]
    valence = np.where(t < 5, 0.8, -0.8)
    v = values(run(t, valence, v_var=v_var))
    assert np.abs(np.diff(v)).max() < 0.1              # continuous through every gate event
    mid = v[phase == 3]
    assert np.all(mid == mid[0]) and -0.8 < mid[0] < 0.8  # held where the glide was


def test_smoothstep():
    assert smoothstep(0.0) == 0.0 and smoothstep(1.0) == 1.0 and smoothstep(0.5) == 0.5
    assert smoothstep(-1.0) == 0.0 and smoothstep(2.0) == 1.0 and smoothstep(math.nan) == 0.0


def test_non_finite_input_counts_as_uncertain():
    s = Stabiliser(_cfg())
    s.update(0.0, VA(0.3, 0.3, SURE, SURE))
    out = s.update(0.1, VA(math.nan, 0.3, SURE, math.inf))
    assert out.gated_valence and out.gated_arousal and out.valence == 0.3 and out.arousal == 0.3
    assert math.isfinite(out.valence_var) and 0 < out.arousal_var <= 1.0


# --- config -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, names", [
    ({"gate_open_var": 0.12, "gate_close_var": 0.12}, ("gate_open_var", "gate_close_var")),
    ({"gate_open_var": 0.35}, ("gate_open_var", "gate_close_var")),
    ({"gate_open_var": -0.1}, ("gate_open_var",)),
    ({"time_constant_s": 0.0}, ("time_constant_s",)),
    ({"glide_s": -1.0}, ("glide_s",)),
    ({"time_constant_s": math.nan}, ("time_constant_s",)),
])
def test_config_validation_is_one_line(kwargs, names):
    with pytest.raises(MoodsicError) as err:
        Stabiliser(StabiliseConfig(**kwargs))
    message = str(err.value)
    assert "\n" not in message and message.startswith("config stabilise.")
    assert all(name in message for name in names)


def test_default_config_is_valid():
    validate_config(StabiliseConfig())
    Stabiliser(StabiliseConfig(glide_s=0.0))           # no glide is allowed


# --- metrics ----------------------------------------------------------------------------------------------------

def test_jitter_reduction_on_white_noise():
    rng = np.random.default_rng(3)
    t = np.arange(0, 601) / 10.0                       # 60 s at 10 Hz
    raw = 0.3 + 0.2 * rng.standard_normal(t.size)
    out = run(t, raw)
    m = RunMetrics()
    for o in out:
        m.add(o)
    report = m.to_dict()
    reduction = report["jitter"]["valence"]["reduction_pct"]
    print(f"\nwhite noise 10 Hz tau {TAU} s: jitter raw {report['jitter']['valence']['raw']}, "
          f"stable {report['jitter']['valence']['stable']}, reduction {reduction} %")
    assert reduction > 80.0
    assert jitter(raw) == pytest.approx(0.2 * 2 / math.sqrt(math.pi), rel=0.1)  # E|dx| of white noise
    assert report["jitter"]["arousal"]["reduction_pct"] is None                  # constant input: undefined
    assert report["updates"] == 601 and report["rate_hz"] == pytest.approx(10.0)
    assert report["duration_s"] == pytest.approx(60.0)


def test_jitter_functions():
    assert jitter([0.0, 1.0, 0.0, 0.5]) == pytest.approx((1 + 1 + 0.5) / 3)
    assert jitter([[0, 0], [3, 4]]) == pytest.approx(5.0)
    assert math.isnan(jitter([1.0]))
    assert jitter_reduction_pct([0, 1, 0, 1], [0, 0.1, 0, 0.1]) == pytest.approx(90.0)
    assert math.isnan(jitter_reduction_pct([1, 1, 1], [0, 1, 0]))


def test_response_time_on_a_clean_step():
    rate = 10.0
    t = np.arange(0, 401) / rate
    step_t = 5.0
    out = run(t, np.where(t >= step_t - 1e-9, -0.5, 0.5))
    measured = response_time(t, values(out), step_t)
    print(f"\nresponse time of a clean step at {rate:g} Hz, tau {TAU} s: {measured:.3f} s")
    assert TAU - 1 / rate - 0.01 <= measured <= TAU    # one period early at most (see the 5/30 Hz test)
    # the function itself on an exact exponential, finely sampled
    tt = np.linspace(0, 40, 40001)                     # long enough to settle: the default end is y[-1]
    yy = np.where(tt < 2, 0.0, 1 - np.exp(-(tt - 2) / 3.0))
    assert response_time(tt, yy, 2.0) == pytest.approx(3.0, abs=2e-3)
    assert response_time(tt, yy, 2.0, fraction=0.5) == pytest.approx(3.0 * math.log(2), abs=2e-3)
    assert math.isnan(response_time(tt, np.zeros_like(tt), 2.0))              # no step
    assert math.isnan(response_time(tt, yy, 2.0, end=2.0))                    # never gets there

    m = RunMetrics()
    for o in out:
        m.add(o)
    m.mark_step(step_t)
    report = m.to_dict()
    assert report["response_s"]["valence"][0] == pytest.approx(measured, abs=2e-3)  # end: raw level vs y[-1]
    assert report["response_s"]["arousal"] == [None]                          # no step in arousal


def test_switching_and_dwell():
    switches = [0.0, 30.0, 55.0, 100.0, 130.0]
    assert switches_per_minute(switches, 180.0) == pytest.approx(5 / 3)
    assert math.isnan(switches_per_minute(switches, 0.0))
    dwells = dwell_times([30.0, 0.0, 100.0, 55.0, 130.0])                    # order does not matter
    assert list(dwells) == [30.0, 25.0, 45.0, 30.0]
    stats = dwell_stats(dwells)
    assert (stats.count, stats.min, stats.median, stats.max) == (4, 25.0, 30.0, 45.0)
    assert stats.p90 == pytest.approx(40.5)            # between 30 and 45, linear interpolation
    assert dwell_stats([]).count == 0 and dwell_stats([]).to_dict()["median"] is None

    m = RunMetrics()
    m.add(Stable(0.0, 0, 0, 0, 0, SURE, SURE, False, False))
    m.add(Stable(180.0, 0, 0, 0, 0, SURE, SURE, False, False))
    for s in switches:
        m.add_switch(s)
    report = m.to_dict()
    assert report["switches"] == {"count": 5, "per_minute": 1.667}
    assert report["dwell_s"] == {"count": 4, "min": 25.0, "median": 30.0, "p90": 40.5, "max": 45.0}


def test_gating_share_on_a_known_series():
    t = np.arange(0, 20) / 10.0
    v_var = np.where((t >= 0.7 - 1e-9) & (t < 1.2 - 1e-9), UNSURE, SURE)  # 5 of 20 updates gated
    m = RunMetrics()
    for o in run(t, np.zeros_like(t), v_var=v_var):
        m.add(o)
    report = m.to_dict()
    assert report["gating_share"] == {"valence": 0.25, "arousal": 0.0}
    assert gating_share([True, False, False, False]) == 0.25 and math.isnan(gating_share([]))


def test_report_is_plain_json():
    empty = RunMetrics().to_dict()
    json.dumps(empty, allow_nan=False)
    assert empty["updates"] == 0 and empty["jitter"]["valence"]["raw"] is None
    m = RunMetrics()
    for o in run(np.arange(0, 50) / 10.0, np.linspace(-1, 1, 50), v_var=np.linspace(0, 0.3, 50)):
        m.add(o)
    m.add_switch(1.0)
    m.mark_step(2.0)
    text = json.dumps(m.to_dict(), allow_nan=False)
    assert json.loads(text)["updates"] == 50


def test_latency_percentiles_are_reported_in_ms_and_bounded():
    empty = RunMetrics().to_dict()
    assert empty["latency_ms"] == {"p50": None, "p95": None, "count": 0}
    m = RunMetrics()
    for ms in range(1, 101):                          # 1..100 ms
        m.add_latency(ms / 1e3)
    report = m.to_dict()
    assert report["latency_ms"] == {"p50": 50.5, "p95": 95.05, "count": 100}
    assert {"updates", "duration_s", "rate_hz", "jitter", "gating_share", "response_s", "switches",
            "dwell_s"} <= set(report)                 # the existing keys stay
    json.dumps(report, allow_nan=False)
    small = RunMetrics(latency_keep=10)               # only the most recent are kept; all are counted
    for ms in [1000.0] * 50 + [10.0] * 10:
        small.add_latency(ms / 1e3)
    assert len(small.latencies_s) == 10 and small.to_dict()["latency_ms"] == {"p50": 10.0, "p95": 10.0, "count": 60}
