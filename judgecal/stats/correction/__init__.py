"""The remedy's statistics: what a window of production judge scores should have been.

Given a calibration set (items scored by humans *and* by the drifted judge) and a window of
production scores from that judge, estimate the window's true mean (ordinal/interval
scales) or rate (binary, nominal, pairwise) with an interval. Pure functions of numpy
arrays: no I/O, no database. Degenerate inputs never raise: they return a
:class:`CorrectionEstimate` with ``value=None``, a sentence in ``undefined`` and a key in
``undefined_code`` (``too_few_items``, ``near_singular`` — a refusal —,
``lambda_undefined``, ``not_categorical``, ``stratum_without_labels``, ``one_category``).
Invalid input (wrong shapes, codes off the scale, bad options) raises ``ValueError``.

Public API
----------
``raw_estimate``              the window's judge mean/rate as it is
``ppi_mean``                  PPI++ from the calibration set (power-tuned λ)
``human_only_mean``           the human labels alone (PPI++ with λ = 0)
``shift_robust``              Rogan–Gladen (binary) / confusion-matrix inversion (K codes)
``rogan_gladen``              the Rogan–Gladen formula, and ``rogan_gladen_variance``
``stratified_sample``         a seeded stratified sample of a window's score ids to label
``window_sample_ppi``         PPI++ on that labelled window sample (stratum-weighted)
``agreement_check``           do corrected estimates disagree beyond their intervals?
``representativeness_check``  healthy judge: calibration items vs pre-onset production
``correct_window``            raw + PPI++ + shift-robust on one window
``placebo``                   coverage of known values on pre-drift windows

What is estimated on each scale (:mod:`judgecal.stats.correction._target`): binary and
nominal — the rate of ``positive`` (binary default code 1); pairwise — the preference rate
for the first response, ties counting half; ordinal and interval — the mean score.

Which estimate to trust
-----------------------
* PPI++ (Angelopoulos, Duchi & Zrnic 2023) is valid when the calibration items are a random
  sample of the window's population; it never needs the judge to be right, only correlated.
* Shift-robust inversion (Rogan & Gladen 1978; Lipton et al. 2018) is valid when the label
  distribution differs between calibration set and window but the judge's error rates given
  the true label do not; it is refused when those error rates are near-singular.
* When the two disagree beyond their intervals (:func:`agreement_check`), the calibration set
  does not represent the window: label a stratified window sample
  (:func:`stratified_sample`) and use :func:`window_sample_ppi`, whose interval is never
  wider than the labels alone would give.

Every window term takes ``clusters`` (one conversation/trace id per score): the raw and
PPI++ variances are then cluster-robust (CR1) and the shift-robust bootstrap resamples whole
clusters (:mod:`judgecal.stats.correction._cluster`).

Intervals and their measured coverage are in ``benchmarks/bench_correction.py``
(``make bench-correction``).
"""

from judgecal.stats.correction._checks import (
    METHODS,
    agreement_check,
    correct_window,
    placebo,
    representativeness_check,
)
from judgecal.stats.correction._ppi import (
    LAMBDA_LOW,
    MIN_LABELLED,
    human_only_mean,
    ppi_mean,
    raw_estimate,
    window_sample_ppi,
)
from judgecal.stats.correction._result import (
    FLAG_CALIBRATION_DIFFERS_FROM_PRODUCTION,
    FLAG_CALIBRATION_NOT_REPRESENTATIVE,
    FLAG_INTERVAL_BEYOND_SCALE,
    FLAG_JUDGE_UNINFORMATIVE,
    FLAG_PLACEBO_MISSED,
    FLAG_TEXT,
    UNDEFINED_CODES,
    AgreementCheck,
    CorrectionEstimate,
    PlaceboMethod,
    PlaceboResult,
    RepresentativenessCheck,
    StratifiedSample,
)
from judgecal.stats.correction._sampling import proportional_allocation, stratified_sample
from judgecal.stats.correction._shift import (
    MAX_CONDITION,
    MIN_YOUDEN,
    project_to_simplex,
    rogan_gladen,
    rogan_gladen_variance,
    shift_robust,
)

__all__ = [
    "FLAG_CALIBRATION_DIFFERS_FROM_PRODUCTION",
    "FLAG_CALIBRATION_NOT_REPRESENTATIVE",
    "FLAG_INTERVAL_BEYOND_SCALE",
    "FLAG_JUDGE_UNINFORMATIVE",
    "FLAG_PLACEBO_MISSED",
    "FLAG_TEXT",
    "LAMBDA_LOW",
    "MAX_CONDITION",
    "METHODS",
    "MIN_LABELLED",
    "MIN_YOUDEN",
    "UNDEFINED_CODES",
    "AgreementCheck",
    "CorrectionEstimate",
    "PlaceboMethod",
    "PlaceboResult",
    "RepresentativenessCheck",
    "StratifiedSample",
    "agreement_check",
    "correct_window",
    "human_only_mean",
    "placebo",
    "ppi_mean",
    "project_to_simplex",
    "proportional_allocation",
    "raw_estimate",
    "representativeness_check",
    "rogan_gladen",
    "rogan_gladen_variance",
    "shift_robust",
    "stratified_sample",
    "window_sample_ppi",
]
