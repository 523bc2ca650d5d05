"""The STAR columns isonet-nf reads and writes, each named once, and the one rule for an empty cell.

A constant is the RELION label without ``rln`` in upper snake case (``rlnMicrographName`` is
``MICROGRAPH_NAME``), so either spelling finds the other. Tables are :class:`pandas.DataFrame`
whose columns are these labels (``starfile`` drops the leading underscore). Groups: IsoNet's
tomogram table, IsoNet's subtomogram table, isonet-nf's additions, RELION 5's.
"""

from __future__ import annotations

from typing import TypeGuard

import numpy as np

# === IsoNet's tomogram table (tomograms.star) ===
INDEX = "rlnIndex"  # the tomogram's number (1, 2, ...): --tomo-idx picks by it, it seeds its subtomograms
MICROGRAPH_NAME = "rlnMicrographName"  # the tomogram's MRC file
PIXEL_SIZE = "rlnPixelSize"  # Å per voxel (also in subtomo.star)
DEFOCUS = "rlnDefocus"  # Å, underfocus positive; 0 means no CTF deconvolution
NUMBER_SUBTOMO = "rlnNumberSubtomo"  # how many subtomograms extract cuts from the tomogram
MASK_BOUNDARY = "rlnMaskBoundary"  # an IMOD model (.mod) bounding the sample, or None
SNR_FALLOFF = "rlnSnrFalloff"  # deconv: how fast the modelled SNR falls with frequency
DECONV_STRENGTH = "rlnDeconvStrength"  # deconv: log10 of the modelled SNR
DECONV_TOMO_NAME = "rlnDeconvTomoName"  # the CTF-deconvolved tomogram deconv wrote
MASK_DENSITY_PERCENTAGE = "rlnMaskDensityPercentage"  # make-mask: % of voxels kept by local density
MASK_STD_PERCENTAGE = "rlnMaskStdPercentage"  # make-mask: % of voxels kept by local standard deviation
MASK_NAME = "rlnMaskName"  # the sample mask make-mask wrote (or the user's own)
CORRECTED_TOMO_NAME = "rlnCorrectedTomoName"  # the tomogram predict corrected

# === IsoNet's subtomogram table (subtomo.star) ===
SUBTOMO_INDEX = "rlnSubtomoIndex"  # the subtomogram's number, 1..N
IMAGE_NAME = "rlnImageName"  # the subtomogram's MRC file
CUBE_SIZE = "rlnCubeSize"  # edge in voxels of the cube the network trains on
CROP_SIZE = "rlnCropSize"  # edge in voxels of the subtomogram cut (the cube plus a margin)

# === isonet-nf's additions ===
TILT_MIN = "rlnTiltMin"  # degrees, the lowest tilt of the series (the missing wedge's edge; default -60)
TILT_MAX = "rlnTiltMax"  # degrees, the highest tilt of the series (default +60)
TILT_ANGLE_FILE = "rlnTiltAngleFile"  # the series' .tlt (one angle a line), for a wedge with its gaps
FIX_NONFINITE = "rlnFixNonfinite"  # 1: NaN/Inf voxels are filled, not refused (prepare-star's choice)
RELION_TOMOGRAMS_STAR = "rlnRelionTomogramsStar"  # the RELION 5 tomograms.star a row came from
RELION_PROJECT_DIR = "rlnRelionProjectDir"  # the folder that STAR's paths start from
CORRECTED_TOMO_HALF1 = "rlnCorrectedTomoHalf1"  # the tomogram corrected by half 1's network
CORRECTED_TOMO_HALF2 = "rlnCorrectedTomoHalf2"  # the tomogram corrected by half 2's network
GOLD_STANDARD_FSC = "rlnGoldStandardFsc"  # the FSC (JSON) between the two corrected tomograms
RAW_HALVES_FSC = "rlnRawHalvesFsc"  # the FSC (JSON) between the raw even/odd half tomograms
CORRECTED_HALVES_FSC = "rlnCorrectedHalvesFsc"  # the FSC (JSON) between the corrected even/odd halves
RANDOM_SUBSET = "rlnRandomSubset"  # subtomo.star: the gold-standard half, 1 or 2
IMAGE_NAME_HALF2 = "rlnImageNameHalf2"  # subtomo.star, noise2noise: the same box cut from the odd half
DECONVOLVED = "rlnDeconvolved"  # subtomo.star: 1 cut from a deconvolved tomogram, 0 a raw one (models record it)
COORDINATE_X = "rlnCoordinateX"  # subtomo.star: the box centre's voxel in the tomogram, X
COORDINATE_Y = "rlnCoordinateY"  # ... Y
COORDINATE_Z = "rlnCoordinateZ"  # ... Z

# === RELION 5's (a Reconstruct job's tomograms.star and its tilt-series STARs) ===
TOMO_NAME = "rlnTomoName"  # the tomogram's name in the project
TOMO_RECONSTRUCTED_TOMOGRAM = "rlnTomoReconstructedTomogram"  # the tomogram's MRC file
TOMO_RECONSTRUCTED_TOMOGRAM_HALF1 = "rlnTomoReconstructedTomogramHalf1"  # reconstructed from the even tilts
TOMO_RECONSTRUCTED_TOMOGRAM_HALF2 = "rlnTomoReconstructedTomogramHalf2"  # reconstructed from the odd tilts
TOMO_RECONSTRUCTED_TOMOGRAM_PROJ2D = "rlnTomoReconstructedTomogramProj2D"  # the tomogram's projection image
TOMO_RECONSTRUCTED_TOMOGRAM_PROJ2D_HALF1 = "rlnTomoReconstructedTomogramProj2DHalf1"  # half 1's projection
TOMO_RECONSTRUCTED_TOMOGRAM_PROJ2D_HALF2 = "rlnTomoReconstructedTomogramProj2DHalf2"  # half 2's projection
TOMO_TILT_SERIES_STAR_FILE = "rlnTomoTiltSeriesStarFile"  # the tilt series' STAR (angles, defocus)
TOMO_TILT_SERIES_PIXEL_SIZE = "rlnTomoTiltSeriesPixelSize"  # Å per pixel of the tilt images
TOMO_TOMOGRAM_BINNING = "rlnTomoTomogramBinning"  # tomogram voxel / tilt-image pixel
TOMO_HAND = "rlnTomoHand"  # the tilt geometry's handedness (RELION needs it; IsoNet does not)
TOMO_SIZE_X = "rlnTomoSizeX"  # the tomogram's size in unbinned (tilt-image) pixels, X
TOMO_SIZE_Y = "rlnTomoSizeY"  # ... Y
TOMO_SIZE_Z = "rlnTomoSizeZ"  # ... Z
VOLTAGE = "rlnVoltage"  # kV (also in isonet-nf's tomograms.star, for deconv)
SPHERICAL_ABERRATION = "rlnSphericalAberration"  # mm (likewise)
AMPLITUDE_CONTRAST = "rlnAmplitudeContrast"  # fraction (likewise)
TOMO_Y_TILT = "rlnTomoYTilt"  # tilt-series STAR: the aligned tilt angle, degrees
TOMO_NOMINAL_STAGE_TILT_ANGLE = "rlnTomoNominalStageTiltAngle"  # tilt-series STAR: the stage's angle, degrees
DEFOCUS_U = "rlnDefocusU"  # tilt-series STAR: Å, along the astigmatism's major axis
DEFOCUS_V = "rlnDefocusV"  # tilt-series STAR: Å, along its minor axis

# === Groups ===
#: The raw even/odd half tomograms (RELION 5's names, kept in isonet-nf's tomograms.star).
RAW_HALVES = (TOMO_RECONSTRUCTED_TOMOGRAM_HALF1, TOMO_RECONSTRUCTED_TOMOGRAM_HALF2)
#: The tomogram corrected by each gold-standard half's network.
CORRECTED_HALVES = (CORRECTED_TOMO_HALF1, CORRECTED_TOMO_HALF2)
#: Columns that name files: a STAR copied elsewhere keeps them valid by making them absolute.
PATH_COLUMNS = (MICROGRAPH_NAME, DECONV_TOMO_NAME, MASK_NAME, *RAW_HALVES, TILT_ANGLE_FILE)

#: Column types of tomograms.star (IsoNet's, isonet-nf's and the RELION 5 ones kept); others stay as read.
TOMOGRAM_COLUMNS: dict[str, type] = {
    INDEX: int, MICROGRAPH_NAME: str, PIXEL_SIZE: float, DEFOCUS: float, NUMBER_SUBTOMO: int,
    MASK_BOUNDARY: str, TILT_MIN: float, TILT_MAX: float, SNR_FALLOFF: float, DECONV_STRENGTH: float,
    DECONV_TOMO_NAME: str, MASK_DENSITY_PERCENTAGE: float, MASK_STD_PERCENTAGE: float, MASK_NAME: str,
    CORRECTED_TOMO_NAME: str, CORRECTED_TOMO_HALF1: str, CORRECTED_TOMO_HALF2: str,
    TOMO_RECONSTRUCTED_TOMOGRAM_HALF1: str, TOMO_RECONSTRUCTED_TOMOGRAM_HALF2: str,
    GOLD_STANDARD_FSC: str, RAW_HALVES_FSC: str, CORRECTED_HALVES_FSC: str,
    VOLTAGE: float, SPHERICAL_ABERRATION: float, AMPLITUDE_CONTRAST: float, TOMO_NAME: str, TILT_ANGLE_FILE: str,
    RELION_TOMOGRAMS_STAR: str, RELION_PROJECT_DIR: str,
}

#: Column types of subtomo.star (IsoNet's and isonet-nf's); others stay as read.
SUBTOMO_COLUMNS: dict[str, type] = {
    SUBTOMO_INDEX: int, IMAGE_NAME: str, CUBE_SIZE: int, CROP_SIZE: int, PIXEL_SIZE: float, TILT_MIN: float,
    TILT_MAX: float, RANDOM_SUBSET: int, TILT_ANGLE_FILE: str, IMAGE_NAME_HALF2: str, DECONVOLVED: int,
}

#: What an empty STAR cell holds once read: blank, IsoNet's and RELION's ``None``, pandas' NaN and ``<NA>``.
_EMPTY = ("", "None", "none", "nan", "<NA>")


def is_set(value: object) -> TypeGuard[str | float]:
    """True unless a STAR cell is empty: None, NaN, or blank, ``None``, ``nan`` or ``<NA>`` as text; a set cell is
    text or a number.
    """
    if value is None:
        return False
    if isinstance(value, float) and np.isnan(value):
        return False
    return str(value).strip() not in _EMPTY
