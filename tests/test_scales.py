import numpy as np
import pytest

from moodsic_live.errors import ScaleError
from moodsic_live.scales import SCALES, from_reference, to_reference, variance_to_reference


@pytest.mark.parametrize("value,expected", [(-3, -1), (-1, -1 / 3), (0, 0), (1, 1 / 3), (3, 1), (1.5, 0.5)])
def test_findingemo_valence(value, expected):
    assert to_reference(value, "findingemo", "valence") == pytest.approx(expected)


@pytest.mark.parametrize("value,expected", [(0, -1), (1, -2 / 3), (3, 0), (4.5, 0.5), (6, 1)])
def test_findingemo_arousal(value, expected):
    assert to_reference(value, "findingemo", "arousal") == pytest.approx(expected)


def test_seed_bug_small_findingemo_values_are_converted_too():
    # The seed converted only |x| > 1 and so left V = +-1, 0 and A = 0, 1 on the wrong scale.
    v = to_reference(np.array([-1.0, 0.0, 1.0]), "findingemo", "valence")
    a = to_reference(np.array([0.0, 1.0]), "findingemo", "arousal")
    np.testing.assert_allclose(v, [-1 / 3, 0.0, 1 / 3])
    np.testing.assert_allclose(a, [-1.0, -2 / 3])


@pytest.mark.parametrize("value,expected", [(1, -1), (5, 0), (9, 1), (3, -0.5), (7.4, 0.6)])
def test_deam_static_sam_scale(value, expected):
    for dim in ("valence", "arousal"):
        assert to_reference(value, "deam_static", dim) == pytest.approx(expected)


@pytest.mark.parametrize("scale", ["deam_dynamic", "affectnet", "emonet", "veatic", "reference"])
def test_unit_scales_are_identity(scale):
    x = np.linspace(-1, 1, 9)
    np.testing.assert_allclose(to_reference(x, scale, "valence"), x)
    np.testing.assert_allclose(to_reference(x, scale, "arousal"), x)


@pytest.mark.parametrize("scale,dim,value", [("findingemo", "valence", 3.2), ("findingemo", "arousal", -0.1),
                                             ("deam_static", "valence", 0.5), ("deam_static", "arousal", 9.01),
                                             ("deam_dynamic", "valence", 1.2), ("veatic", "arousal", -1.5),
                                             ("affectnet", "valence", 2.0)])
def test_out_of_range_is_an_error_not_clipped(scale, dim, value):
    with pytest.raises(ScaleError, match="outside its scale"):
        to_reference(value, scale, dim)


def test_one_bad_value_in_an_array_fails_the_whole_array():
    with pytest.raises(ScaleError, match="1 value"):
        to_reference(np.array([1.0, 5.0, 10.0]), "deam_static", "valence")


def test_nan_is_refused_unless_allowed():
    with pytest.raises(ScaleError, match="missing"):
        to_reference(np.array([0.1, np.nan]), "deam_dynamic", "valence")
    out = to_reference(np.array([0.1, np.nan]), "deam_dynamic", "valence", allow_nan=True)
    assert out[0] == pytest.approx(0.1) and np.isnan(out[1])


def test_unknown_scale_names_the_known_ones():
    with pytest.raises(ScaleError, match="findingemo"):
        to_reference(0.0, "emotic", "valence")


@pytest.mark.parametrize("scale", list(SCALES))
def test_round_trip(scale):
    for dim in ("valence", "arousal"):
        x = np.linspace(-1, 1, 11)
        np.testing.assert_allclose(to_reference(from_reference(x, scale, dim), scale, dim), x, atol=1e-12)


def test_variance_scales_with_the_square_of_the_slope():
    assert variance_to_reference(0.9, "findingemo", "valence") == pytest.approx(0.1)
    assert variance_to_reference(4.0, "deam_static", "arousal") == pytest.approx(0.25)
    with pytest.raises(ScaleError):
        variance_to_reference(-1.0, "deam_static", "arousal")
