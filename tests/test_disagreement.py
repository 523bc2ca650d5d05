"""Local correlation of two corrected halves: high where both carry the structure, low where each has its own noise."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from isonet_steps.core.disagreement import disagreement_summary, local_correlation, slab_local_correlation
from isonet_steps.io.errors import InputError


def _halves(shape=(24, 40, 40), seed=0):
    """Shared structure in the left half of X, independent noise everywhere."""
    rng = np.random.default_rng(seed)
    structure = ndimage.gaussian_filter(rng.standard_normal(shape), 1.5)
    structure /= structure.std()
    structure[..., shape[2] // 2:] = 0.0
    a = structure + 0.3 * rng.standard_normal(shape)
    b = structure + 0.3 * rng.standard_normal(shape)
    return a, b


def test_structure_correlates_and_invented_noise_does_not():
    a, b = _halves()
    corr = local_correlation(a, b, window=7)
    assert corr.shape == a.shape and corr.dtype == np.float32
    inner = (slice(4, -4), slice(4, -4))
    left = corr[:, inner[0], 4:14]
    right = corr[:, inner[0], 26:36]
    assert np.median(left) > 0.8
    assert abs(np.median(right)) < 0.15


def test_matches_a_direct_window_correlation():
    a, b = _halves((12, 16, 16), seed=3)
    corr = local_correlation(a, b, window=5)
    z, y, x = 6, 7, 9
    wa = a[z - 2:z + 3, y - 2:y + 3, x - 2:x + 3].ravel()
    wb = b[z - 2:z + 3, y - 2:y + 3, x - 2:x + 3].ravel()
    assert corr[z, y, x] == pytest.approx(np.corrcoef(wa, wb)[0, 1], abs=1e-5)


def test_scale_and_offset_do_not_matter_and_sign_does():
    a, b = _halves((12, 20, 20), seed=1)
    base = local_correlation(a, b, window=5)
    np.testing.assert_allclose(local_correlation(3.0 * a + 100.0, 0.5 * b - 7.0, window=5), base, atol=1e-4)
    np.testing.assert_allclose(local_correlation(a, -b, window=5), -base, atol=1e-5)


def test_flat_windows_count_as_no_agreement():
    a = np.zeros((8, 8, 8))
    b = np.random.default_rng(0).standard_normal((8, 8, 8))
    assert np.all(local_correlation(a, b, window=3) == 0.0)


def test_a_section_from_its_slab_equals_the_full_map():
    a, b = _halves((30, 24, 24), seed=2)
    full = local_correlation(a, b, window=7, smooth=1.0)
    for z in (0, 11, 29):
        np.testing.assert_allclose(slab_local_correlation(a, b, z, window=7, smooth=1.0), full[z], atol=1e-5)


def test_summary_and_bad_input():
    a, b = _halves()
    corr = local_correlation(a, b, window=7)
    mask = np.zeros(a.shape)
    mask[..., :16] = 1
    assert disagreement_summary(corr, mask)["median"] > 0.8
    assert disagreement_summary(corr)["fraction_below_0.2"] > 0.3
    with pytest.raises(InputError, match="differ in shape"):
        local_correlation(a, b[:-1])
