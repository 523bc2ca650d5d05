"""The wedge checked against the data: simulated tomograms tell a right sign from a mirrored one."""

import numpy as np
import pytest

from isonet_steps.core.phantom import add_noise, ground_truth_volume, make_phantom, project, weighted_back_projection
from isonet_steps.core.wedge import Wedge
from isonet_steps.core.wedge_check import check_wedge, estimate_angular_profile

SHAPE = (48, 48, 56)
SEEDS = (0, 1, 2)


def _tomogram(angles, seed, snr=0.5):
    """A weighted back-projection of a phantom from exactly ``angles`` (gaps allowed), our convention."""
    truth, _ = ground_truth_volume(SHAPE, seed)
    angles = np.asarray(angles, float)
    rng = np.random.default_rng([seed, 7])
    return weighted_back_projection(add_noise(project(truth, angles), snr, rng), angles, SHAPE)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("lo", "hi"), [(-50, 65), (-45, 65)])
def test_asymmetric_range_agrees_with_the_right_sign_and_is_mirrored_with_the_wrong_one(lo, hi, seed):
    tomogram = make_phantom(SHAPE, tilt_min=lo, tilt_max=hi, snr=0.3, seed=seed).tomogram
    right = check_wedge(tomogram, Wedge.from_range(lo, hi))
    wrong = check_wedge(tomogram, Wedge.from_range(-hi, -lo))
    assert right.verdict == "agrees", right
    assert wrong.verdict == "mirrored", wrong
    assert right.score > right.score_mirrored
    assert wrong.score == pytest.approx(right.score_mirrored) and wrong.score_mirrored == pytest.approx(right.score)
    # the estimated edges are the measured range, within a few degrees (a finite cube blurs them)
    assert abs(right.edges[0] - lo) < 4 and abs(right.edges[1] - hi) < 4
    assert right.edges == wrong.edges  # the data's edges, whichever wedge was given


@pytest.mark.parametrize("seed", SEEDS)
def test_a_z_flipped_reconstruction_reads_as_mirrored(seed):
    """Opposite handedness (Z stored the other way up) mirrors the wedge: the check sees it."""
    tomogram = make_phantom(SHAPE, tilt_min=-50, tilt_max=65, snr=0.5, seed=seed).tomogram
    assert check_wedge(tomogram[::-1], Wedge.from_range(-50, 65)).verdict == "mirrored"
    assert check_wedge(tomogram[:, :, ::-1], Wedge.from_range(-50, 65)).verdict == "mirrored"
    assert check_wedge(tomogram[::-1], Wedge.from_range(-65, 50)).verdict == "agrees"


@pytest.mark.parametrize("seed", SEEDS)
def test_projector_of_the_opposite_sense_puts_the_power_at_the_negated_angles(seed):
    """The issue's measurement: tilts -50..+65 with u = x cos θ - z sin θ carry power at -65..+50."""
    angles = np.arange(-50, 66, 3.0)
    tomogram = _tomogram(-angles, seed)  # our projector at -θ is the other sign convention at θ
    result = check_wedge(tomogram, Wedge.from_angles(angles))
    assert result.verdict == "mirrored"
    assert abs(result.edges[0] + 65) < 4 and abs(result.edges[1] - 50) < 4


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("snr", [0.1, 1.0])
def test_a_symmetric_range_is_never_mirrored(seed, snr):
    tomogram = make_phantom(SHAPE, tilt_min=-60, tilt_max=60, snr=snr, seed=seed).tomogram
    for wedge in (Wedge.from_range(-60, 60), Wedge.from_angles(np.arange(-60, 61, 3.0))):
        result = check_wedge(tomogram, wedge)
        assert result.verdict == "agrees"
        assert result.score == result.score_mirrored and result.lean is None
    # on mirrored-looking data too: a symmetric wedge cannot tell the sign
    other = make_phantom(SHAPE, tilt_min=-45, tilt_max=65, snr=snr, seed=seed).tomogram
    assert check_wedge(other, Wedge.from_range(-60, 60)).verdict != "mirrored"


@pytest.mark.parametrize("seed", SEEDS)
def test_a_gap_in_the_series_is_seen_and_signed(seed):
    angles = np.array([a for a in np.arange(-54, 61, 3.0) if not 12 < a < 39])
    tomogram = _tomogram(angles, seed)
    wedge = Wedge.from_angles(angles)
    assert check_wedge(tomogram, wedge).verdict == "agrees"
    assert check_wedge(tomogram, wedge.mirrored()).verdict == "mirrored"
    profile = estimate_angular_profile(tomogram)
    gap = (profile.angles > 18) & (profile.angles < 33)
    measured = (np.abs(profile.angles) < 8) | ((profile.angles > 42) & (profile.angles < 56))
    assert np.nanmax(profile.values[gap]) < np.nanmin(profile.values[measured]) - 1.0


@pytest.mark.parametrize("seed", SEEDS)
def test_pure_noise_is_unclear(seed):
    noise = np.random.default_rng(seed).standard_normal(SHAPE).astype(np.float32)
    for wedge in (Wedge.from_range(-50, 65), Wedge.from_range(-60, 60)):
        assert check_wedge(noise, wedge).verdict == "unclear"


def test_isotropic_noise_swamping_the_data_makes_it_unclear_not_wrong():
    tomogram = make_phantom(SHAPE, tilt_min=-45, tilt_max=65, snr=0.5, seed=3).tomogram
    rng = np.random.default_rng(3)
    for level, expected in ((1.0, "mirrored"), (5.0, "unclear")):
        noisy = tomogram + level * rng.standard_normal(SHAPE).astype(np.float32)
        assert check_wedge(noisy, Wedge.from_range(-65, 45)).verdict == expected


def test_profile_is_whitened_a_radial_filter_changes_nothing_much():
    """Dividing out each radius ring's level: a low-pass (CTF deconvolution, binning) keeps the verdict."""
    tomogram = make_phantom(SHAPE, tilt_min=-45, tilt_max=65, snr=0.5, seed=4).tomogram
    from scipy import ndimage

    smooth = ndimage.gaussian_filter(tomogram, 1.2)
    a, b = estimate_angular_profile(tomogram), estimate_angular_profile(smooth)
    ok = np.isfinite(a.values)
    assert np.array_equal(ok, np.isfinite(b.values))
    assert np.corrcoef(a.values[ok], b.values[ok])[0, 1] > 0.95
    assert check_wedge(smooth, Wedge.from_range(-45, 65)).verdict == "agrees"


def test_edges_of_a_profile_without_a_finite_bin_are_zero_not_an_index_error():
    """Issue #25: a NaN tomogram gave an all-NaN profile, and estimate_edges an IndexError traceback."""
    from isonet_steps.core.wedge_check import AngularProfile, estimate_edges

    angles = np.arange(-89.0, 90.0, 2.0)
    assert estimate_edges(AngularProfile(angles=angles, values=np.full(angles.shape, np.nan))) == (0.0, 0.0)
