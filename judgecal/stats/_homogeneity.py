"""Tests that the two runs' verdicts on the same items have the same distribution.

:func:`mcnemar_p` — exact McNemar test for a paired binary outcome (e.g. unscored in one run,
scored in the other); :func:`stuart_maxwell_p` — Stuart–Maxwell test of marginal homogeneity
for paired categorical verdicts (Stuart 1955; Maxwell 1970), checked against statsmodels'
``SquareTable.homogeneity`` in the tests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

__all__ = ["mcnemar_p", "stuart_maxwell_p"]


def mcnemar_p(b01: int, b10: int) -> float:
    """Exact two-sided McNemar p-value for discordant counts."""
    if b01 + b10 == 0:
        return 1.0
    from scipy.stats import binomtest

    return float(binomtest(b01, b01 + b10, 0.5).pvalue)


def stuart_maxwell_p(a: np.ndarray, b: np.ndarray, domain: list[float]) -> float:
    import numpy as np
    from scipy.stats import chi2

    k = len(domain)
    index = {v: i for i, v in enumerate(domain)}
    table = np.zeros((k, k))
    for x, y in zip(a, b, strict=True):
        table[index[float(x)], index[float(y)]] += 1
    d = table.sum(axis=1) - table.sum(axis=0)
    s = -(table + table.T)
    np.fill_diagonal(s, table.sum(axis=1) + table.sum(axis=0) - 2 * np.diag(table))
    d, s = d[:-1], s[:-1, :-1]
    rank = int(np.linalg.matrix_rank(s))
    if rank == 0:
        return 1.0
    stat = float(d @ np.linalg.pinv(s) @ d)
    return float(chi2.sf(stat, rank))
