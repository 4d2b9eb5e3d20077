"""Published worked examples, with the arithmetic shown."""

from __future__ import annotations

import math

import numpy as np
import pytest

from judgecal.scales import Scale
from judgecal.stats import human_ceiling, judge_agreement
from tests.support.reference import reference_alpha, reference_judge_metrics

nan = np.nan

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C: four coders
# (rows A-D) code twelve units on a 1-5 scale with missing values.
KRIPPENDORFF_2011 = np.array([
    [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
    [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
]).T  # items x raters

# Wikipedia's example (also in the krippendorff package docs): three coders, fifteen units.
WIKIPEDIA = np.array([
    [nan, nan, nan, nan, nan, 3, 4, 1, 2, 1, 1, 3, 3, nan, 3],
    [1, nan, 2, 1, 3, 3, 4, 3, nan, nan, nan, nan, nan, nan, nan],
    [nan, nan, 2, 1, 3, 4, 4, nan, 2, 1, 1, 3, 3, nan, 4],
]).T


@pytest.mark.parametrize(("scale", "data", "expected"), [
    (Scale(kind="nominal", categories=list("12345")), KRIPPENDORFF_2011 - 1, 0.743),
    (Scale(kind="ordinal", min=1, max=5), KRIPPENDORFF_2011, 0.815),
    (Scale(kind="interval"), KRIPPENDORFF_2011, 0.849),
    (Scale(kind="nominal", categories=list("1234")), WIKIPEDIA - 1, 0.691),
    (Scale(kind="interval"), WIKIPEDIA, 0.811),
])
def test_krippendorff_alpha_worked_examples(
    scale: Scale, data: np.ndarray, expected: float
) -> None:
    res = human_ceiling(scale, data, n_boot=0, min_items=5)
    value = res["alpha_humans"].value
    assert value is not None
    assert round(value, 3) == expected
    assert math.isclose(value, reference_alpha(scale, data), abs_tol=1e-12)


def test_krippendorff_2011_nominal_by_hand() -> None:
    # Unit 12 has a single value and is not pairable: 11 units, n.. = 40 pairable values.
    res = human_ceiling(Scale(kind="nominal", categories=list("12345")), KRIPPENDORFF_2011 - 1,
                        n_boot=0, min_items=5)
    assert res["alpha_humans"].n == 11
    # Coincidence marginals n_c = (9, 13, 10, 5, 3) for values 1..5, n.. = 40.
    # Only units 2 (2,2,3,2), 6 (1,2,3,4) and 8 (1,1,2,1) disagree; a unit with m values
    # contributes (m^2 - sum of squared value counts) / (m - 1) mismatching pairs:
    # (16 - 10)/3 + (16 - 4)/3 + (16 - 10)/3 = 8, so D_o = 8 / 40.
    # Expected: (40^2 - (81 + 169 + 100 + 25 + 9)) / (40 * 39) = 1216 / 1560.
    # alpha = 1 - (8/40) / (1216/1560) = 1 - 312/1216 = 0.7434.
    d_o = 8 / 40
    d_e = 1216 / 1560
    assert math.isclose(res["alpha_humans"].value, 1 - d_o / d_e, abs_tol=1e-12)


# Artstein & Poesio (2008), "Inter-coder agreement for computational linguistics",
# section 2.4: two coders tag 100 utterances as Statement, Info-request or Check.
#                coder A: STAT IREQ CHCK
AP_TABLE = {("STAT", "STAT"): 46, ("IREQ", "STAT"): 6,   # coder B = STAT
            ("IREQ", "IREQ"): 32,                          # coder B = IREQ
            ("IREQ", "CHCK"): 6, ("CHCK", "CHCK"): 10}     # coder B = CHCK
AP_CATS = ["STAT", "IREQ", "CHCK"]


def _ap_data() -> tuple[np.ndarray, np.ndarray]:
    a: list[float] = []
    b: list[float] = []
    for (cat_a, cat_b), count in AP_TABLE.items():
        a += [float(AP_CATS.index(cat_a))] * count
        b += [float(AP_CATS.index(cat_b))] * count
    return np.array(a), np.array(b)


def test_artstein_poesio_kappa_and_alpha() -> None:
    coder_a, coder_b = _ap_data()
    scale = Scale(kind="nominal", categories=AP_CATS)
    res = judge_agreement(scale, coder_a, coder_b, n_boot=0)
    # A_o = 0.88; kappa's chance agreement from each coder's own marginals:
    # A_e = (46*52 + 44*32 + 10*16) / 100^2 = 0.396 -> kappa = (0.88 - 0.396) / 0.604.
    assert res["exact_agreement"].value == pytest.approx(0.88, abs=1e-12)
    assert res["kappa"].value == pytest.approx((0.88 - 0.396) / (1 - 0.396), abs=1e-12)
    assert round(res["kappa"].value, 4) == 0.8013
    # Krippendorff's alpha pools the marginals (98, 76, 26 of 200 values):
    # alpha = 1 - (200 - 1) * 2 * 12 / (200^2 - (98^2 + 76^2 + 26^2)) = 1 - 4776 / 23944.
    assert res["alpha"].value == pytest.approx(1 - 4776 / 23944, abs=1e-12)
    # Scott's pi, for comparison (A&P report 0.7995): alpha = pi corrected for sample size.
    pi = (0.88 - (0.49**2 + 0.38**2 + 0.13**2)) / (1 - (0.49**2 + 0.38**2 + 0.13**2))
    assert round(pi, 4) == 0.7995
    ref = reference_judge_metrics(scale, coder_a, coder_b)
    for key, value in ref.items():
        assert res[key].value == pytest.approx(value, abs=1e-12)


def test_kappa_is_symmetric() -> None:
    coder_a, coder_b = _ap_data()
    scale = Scale(kind="nominal", categories=AP_CATS)
    one = judge_agreement(scale, coder_a, coder_b, n_boot=0)
    two = judge_agreement(scale, coder_b, coder_a, n_boot=0)
    for key in ("kappa", "alpha", "exact_agreement"):
        assert one[key].value == pytest.approx(two[key].value, abs=1e-12)


def test_quadratic_kappa_by_hand() -> None:
    # Consensus (1, 2, 3, 4), judge (1, 3, 3, 5) on a 1..5 scale.
    # Observed squared distances: 0 + 1 + 0 + 1 = 2.
    # Expected under independence: (1/N) sum_i sum_j (x_i - y_j)^2, with rows per x_i of
    # 24, 12, 8, 12: 56 / 4 = 14, so kappa_q = 1 - 2/14 = 6/7.
    # Linear: observed 2, expected (8 + 6 + 4 + 6) / 4 = 6, so kappa_l = 1 - 2/6 = 2/3.
    scale = Scale(kind="ordinal", min=1, max=5)
    res = judge_agreement(scale, np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 3, 5]),
                          n_boot=0, min_items=1)
    assert res["kappa"].value == pytest.approx(6 / 7, abs=1e-12)
    assert res["kappa_linear"].value == pytest.approx(2 / 3, abs=1e-12)
    ref = reference_judge_metrics(scale, np.array([1.0, 2, 3, 4]), np.array([1.0, 3, 3, 5]))
    assert res["kappa"].value == pytest.approx(ref["kappa"], abs=1e-12)
    assert res["mean_bias"].value == pytest.approx(0.5)
    assert res["within_one"].value == pytest.approx(1.0)
