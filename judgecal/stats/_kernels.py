"""Weighted metric kernels: every metric as a function of integer item weights.

A bootstrap replicate that draws items with replacement is the same as giving each item an
integer weight (how often it was drawn). Every metric here is computed from a weight matrix
``W`` of shape (replicates, items); the point estimate is the same code with ``W = 1``. So the
point estimate and every replicate share one implementation, and the point estimate is checked
against the reference libraries (krippendorff, scikit-learn, scipy) in the tests.

How each metric is made fast
----------------------------
* Categorical and ordinal codes: one weighted contingency table per replicate (consensus ×
  judge, built with one gather and ``np.add.reduceat``). Cohen's kappa (unweighted, linear,
  quadratic), exact and within-one agreement, true-positive/negative rates, pairwise accuracy,
  and Krippendorff's alpha for the two "coders" consensus and judge are closed forms of that
  table. For two coders the coincidence matrix is ``T + T.T``; the ordinal distance of
  Krippendorff is the squared difference of the values' cumulative-frequency ranks
  ``R_v = C_v - n_v / 2``, so ordinal alpha is interval alpha on ``R``.
* Spearman: midranks of each distinct value are cumulative weighted counts, so rho is a
  weighted Pearson correlation of table ranks. Kendall's tau-b: concordant minus discordant
  pairs from two-dimensional cumulative sums of the table (exact integer arithmetic).
* Mean bias, MAE, Pearson and interval alpha: weighted moments (one matrix product).

When both the consensus and the judge take so many distinct values that the table would exceed
``TABLE_CELLS_MAX`` cells (continuous data on both sides), Spearman falls back to per-item
rank gathering (still vectorised) and Kendall to ``scipy.stats.kendalltau`` on each
explicitly resampled set (documented slow path).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from judgecal.scales import Level, ScaleKind

TABLE_CELLS_MAX = 50_000
"""Largest consensus × judge contingency table (cells) used for the rank correlations."""

WORK_ELEMENTS = 2_000_000
"""Target size (array elements) of one batch of replicates; bounds memory."""

_REL_TOL = 1e-9
_DENSE_ONEHOT_MAX = 1_000_000


def _rows(n_rows: int, per_row: int) -> Iterator[slice]:
    step = max(1, WORK_ELEMENTS // max(per_row, 1))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


class _Grouper:
    """Sums of weight columns per group of items, as a product with a one-hot matrix.

    The one-hot matrix is dense when small (BLAS) and a scipy sparse matrix otherwise
    (memory stays O(items)).
    """

    def __init__(self, codes: np.ndarray) -> None:
        uniq, inverse = np.unique(codes, return_inverse=True)
        self.uniq = uniq
        size = uniq.size
        self._dense: np.ndarray | None = None
        self._sparse: object | None = None
        if codes.size * size <= _DENSE_ONEHOT_MAX:
            onehot = np.zeros((codes.size, size))
            onehot[np.arange(codes.size), inverse] = 1.0
            self._dense = onehot
        else:
            from scipy.sparse import csr_matrix

            self._sparse = csr_matrix(
                (np.ones(codes.size), (inverse, np.arange(codes.size))),
                shape=(size, codes.size))

    def sums(self, weights: np.ndarray) -> np.ndarray:
        if self._dense is not None:
            return weights @ self._dense
        return np.asarray((self._sparse @ weights.T).T)

    def table(self, weights: np.ndarray, n_rows: int, n_cols: int) -> np.ndarray:
        out = np.zeros((weights.shape[0], n_rows * n_cols))
        out[:, self.uniq] = self.sums(weights)
        return out.reshape(weights.shape[0], n_rows, n_cols)


# --------------------------------------------------------------------------- table formulas


def kappa_from_table(table: np.ndarray, dist: np.ndarray | None = None) -> np.ndarray:
    """Cohen's kappa per replicate from tables (b, L, L) over one ordered label set.

    ``dist`` None gives unweighted kappa ``(p_o - p_e) / (1 - p_e)``; otherwise the weighted
    kappa ``1 - sum(D*O) / sum(D*E)`` with ``E = outer(rows, cols) / N`` (scikit-learn's
    definition). NaN where the consensus (rows) uses fewer than two categories.
    """
    n = table.sum(axis=(1, 2))
    rows = table.sum(axis=2)
    cols = table.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if dist is None:
            p_o = np.trace(table, axis1=1, axis2=2) / n
            p_e = (rows * cols).sum(axis=1) / n**2
            kappa = (p_o - p_e) / (1.0 - p_e)
        else:
            observed = (table * dist).sum(axis=(1, 2))
            expected = np.einsum("bi,ij,bj->b", rows, dist, cols) / n
            kappa = 1.0 - observed / expected
    kappa[(rows > 0).sum(axis=1) < 2] = np.nan
    return kappa


def alpha_from_table(table: np.ndarray, values: np.ndarray, level: Level) -> np.ndarray:
    """Krippendorff's alpha of two coders (rows, cols) from tables (b, L, L).

    ``values`` are the ordered label values. NaN where all pooled values are equal.
    """
    n = table.sum(axis=(1, 2))
    n_v = table.sum(axis=2) + table.sum(axis=1)
    n2 = 2.0 * n
    with np.errstate(divide="ignore", invalid="ignore"):
        if level == "nominal":
            d_o = 2.0 * (n - np.trace(table, axis1=1, axis2=2))
            d_e = (n2**2 - (n_v**2).sum(axis=1)) / (n2 - 1.0)
        else:
            if level == "ordinal":
                pos = np.cumsum(n_v, axis=1) - n_v / 2.0 - n2[:, None] / 2.0
            else:
                centred = values - values.mean()
                pos = np.broadcast_to(centred, n_v.shape)
            dist = (pos[:, :, None] - pos[:, None, :]) ** 2
            d_o = 2.0 * (table * dist).sum(axis=(1, 2))
            s1 = (n_v * pos).sum(axis=1)
            s2 = (n_v * pos**2).sum(axis=1)
            d_e = 2.0 * (n2 * s2 - s1**2) / (n2 - 1.0)
        alpha = 1.0 - d_o / d_e
    alpha[(n_v > 0).sum(axis=1) < 2] = np.nan
    return alpha


def _centred_midranks(counts: np.ndarray, n: np.ndarray) -> np.ndarray:
    # Midrank of a value = (items below it) + (its count + 1) / 2; centred on (N + 1) / 2.
    return np.cumsum(counts, axis=1) - (counts - 1.0) / 2.0 - (n[:, None] + 1.0) / 2.0


def spearman_from_table(table: np.ndarray) -> np.ndarray:
    """Spearman's rho (midranks for ties, as scipy) from tables (b, Lx, Ly) of sorted labels."""
    n = table.sum(axis=(1, 2))
    rows = table.sum(axis=2)
    cols = table.sum(axis=1)
    rank_x = _centred_midranks(rows, n)
    rank_y = _centred_midranks(cols, n)
    cov = np.einsum("bij,bi,bj->b", table, rank_x, rank_y)
    var_x = (rows * rank_x**2).sum(axis=1)
    var_y = (cols * rank_y**2).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = cov / np.sqrt(var_x * var_y)
    rho[((rows > 0).sum(axis=1) < 2) | ((cols > 0).sum(axis=1) < 2)] = np.nan
    return rho


def kendall_from_table(table: np.ndarray) -> np.ndarray:
    """Kendall's tau-b from tables (b, Lx, Ly) of sorted labels (exact for integer weights)."""
    n = table.sum(axis=(1, 2))
    rows = table.sum(axis=2)
    cols = table.sum(axis=1)
    # below[a, b] = sum of cells with row > a (strictly), per column.
    suffix = np.cumsum(table[:, ::-1, :], axis=1)[:, ::-1, :]
    below = np.zeros_like(table)
    below[:, :-1, :] = suffix[:, 1:, :]
    # Cells strictly below-right (concordant) and strictly below-left (discordant).
    right = np.zeros_like(table)
    right[:, :, :-1] = np.cumsum(below[:, :, ::-1], axis=2)[:, :, ::-1][:, :, 1:]
    left = np.zeros_like(table)
    left[:, :, 1:] = np.cumsum(below, axis=2)[:, :, :-1]
    s = (table * (right - left)).sum(axis=(1, 2))
    n0 = n * (n - 1.0) / 2.0
    n1 = (rows * (rows - 1.0)).sum(axis=1) / 2.0
    n2 = (cols * (cols - 1.0)).sum(axis=1) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = s / np.sqrt((n0 - n1) * (n0 - n2))
    tau[((rows > 0).sum(axis=1) < 2) | ((cols > 0).sum(axis=1) < 2)] = np.nan
    return tau


# --------------------------------------------------------------------------- pair data


class PairData:
    """Consensus ``x`` and judge ``y`` on the items where both are defined, ready for weights.

    Parameters
    ----------
    kind : scale kind
    level : Krippendorff level of the scale
    x : consensus values (finite)
    y : judge scores (finite); on an ordinal scale they may be non-integers
    labels : ordered code labels for the code metrics (None for interval scales)
    y_code : the judge's code used by the code metrics (ordinal: ``y`` rounded to the nearest
        code, halves up, clipped to the scale); None for interval scales
    """

    def __init__(
        self,
        kind: ScaleKind,
        level: Level,
        x: np.ndarray,
        y: np.ndarray,
        labels: np.ndarray | None,
        y_code: np.ndarray | None,
    ) -> None:
        self.kind = kind
        self.level = level
        self.x = x
        self.y = y
        self.n = int(x.size)
        self.labels = labels
        self.y_code = y_code
        self._code: _Grouper | None = None
        if labels is not None and y_code is not None:
            size = labels.size
            ix = np.searchsorted(labels, x)
            iy = np.searchsorted(labels, y_code)
            self._code = _Grouper(ix * size + iy)
            self._label_dist = np.abs(labels[:, None] - labels[None, :])
        # Tables for rank correlations (ordinal and interval).
        self._corr: _Grouper | None = None
        self._corr_shape = (0, 0)
        self._corr_reuses_code = False
        self._rank_x: _Grouper | None = None
        self._rank_y: _Grouper | None = None
        if kind in ("ordinal", "interval"):
            if self._code is not None and y_code is not None and np.array_equal(y, y_code):
                self._corr_reuses_code = True
            else:
                ux, ix = np.unique(x, return_inverse=True)
                uy, iy = np.unique(y, return_inverse=True)
                if ux.size * uy.size <= TABLE_CELLS_MAX:
                    self._corr = _Grouper(ix * uy.size + iy)
                    self._corr_shape = (ux.size, uy.size)
                else:
                    self._rank_x = _Grouper(ix)
                    self._rank_y = _Grouper(iy)
                    self._ix, self._iy = ix, iy
            centre = float(np.concatenate([x, y]).mean()) if self.n else 0.0
            xc, yc = x - centre, y - centre
            self._moments = np.column_stack(
                [xc, yc, xc**2, yc**2, xc * yc, y - x, np.abs(y - x), (y - x) ** 2])

    # -- metric evaluation -------------------------------------------------------------

    def compute(self, weights: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """All metrics of the scale for each row of ``weights`` (b, n).

        Returns ``(values, counts)``: per metric key an array (b,) of values (NaN where the
        metric is undefined) and of the items it used.
        """
        values: dict[str, list[np.ndarray]] = {}
        counts: dict[str, list[np.ndarray]] = {}
        per_row = max(self.n, self._table_cells())
        for rows in _rows(weights.shape[0], per_row):
            vals, ns = self._compute(weights[rows])
            for key, arr in vals.items():
                values.setdefault(key, []).append(arr)
            for key, arr in ns.items():
                counts.setdefault(key, []).append(arr)
        return ({k: np.concatenate(v) for k, v in values.items()},
                {k: np.concatenate(v) for k, v in counts.items()})

    def _table_cells(self) -> int:
        cells = 0
        if self.labels is not None:
            cells = self.labels.size**2
        return max(cells, self._corr_shape[0] * self._corr_shape[1])

    def _compute(self, w: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        vals: dict[str, np.ndarray] = {}
        ns: dict[str, np.ndarray] = {}
        total = w.sum(axis=1)
        code_table: np.ndarray | None = None
        if self._code is not None and self.labels is not None:
            size = self.labels.size
            code_table = self._code.table(w, size, size)
            self._code_metrics(code_table, total, vals, ns)
        if self.kind in ("ordinal", "interval"):
            self._numeric_metrics(w, total, code_table, vals, ns)
        return vals, ns

    def _code_metrics(
        self,
        table: np.ndarray,
        total: np.ndarray,
        vals: dict[str, np.ndarray],
        ns: dict[str, np.ndarray],
    ) -> None:
        assert self.labels is not None
        agree = np.trace(table, axis1=1, axis2=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = agree / total
        if self.kind == "pairwise":
            vals["accuracy"] = share
        else:
            vals["exact_agreement"] = share
        vals["alpha"] = alpha_from_table(table, self.labels, self.level)
        if self.kind == "ordinal":
            vals["kappa"] = kappa_from_table(table, self._label_dist**2)
            vals["kappa_linear"] = kappa_from_table(table, self._label_dist)
            near = (self._label_dist <= 1.0 + 1e-12).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                vals["within_one"] = (table * near).sum(axis=(1, 2)) / total
        else:
            vals["kappa"] = kappa_from_table(table)
        for key in vals:
            ns[key] = total
        if self.kind == "binary":
            rows = table.sum(axis=2)
            with np.errstate(divide="ignore", invalid="ignore"):
                vals["tpr"] = table[:, 1, 1] / rows[:, 1]
                vals["tnr"] = table[:, 0, 0] / rows[:, 0]
            ns["tpr"] = rows[:, 1]
            ns["tnr"] = rows[:, 0]
        if self.kind == "pairwise":
            # Labels are [0 (tie), 1, 2]: drop the tie row and column.
            sub = table[:, 1:, 1:]
            n_sub = sub.sum(axis=(1, 2))
            with np.errstate(divide="ignore", invalid="ignore"):
                vals["accuracy_no_ties"] = np.trace(sub, axis1=1, axis2=2) / n_sub
            vals["kappa_no_ties"] = kappa_from_table(sub)
            ns["accuracy_no_ties"] = n_sub
            ns["kappa_no_ties"] = n_sub

    def _numeric_metrics(
        self,
        w: np.ndarray,
        total: np.ndarray,
        code_table: np.ndarray | None,
        vals: dict[str, np.ndarray],
        ns: dict[str, np.ndarray],
    ) -> None:
        sums = w @ self._moments
        sx, sy, sxx, syy, sxy, sd, sad, sdd = sums.T
        with np.errstate(divide="ignore", invalid="ignore"):
            vals["mean_bias"] = sd / total
            vals["mae"] = sad / total
            var_x = sxx - sx**2 / total
            var_y = syy - sy**2 / total
            if self.kind == "interval":
                pearson = (sxy - sx * sy / total) / np.sqrt(var_x * var_y)
                pearson[(var_x <= _REL_TOL * sxx) | (var_y <= _REL_TOL * syy)] = np.nan
                vals["pearson"] = pearson
                # Interval alpha of two coders from pooled moments.
                n2 = 2.0 * total
                s1 = sx + sy
                s2 = sxx + syy
                spread = n2 * s2 - s1**2
                alpha = 1.0 - (2.0 * sdd) / (2.0 * spread / (n2 - 1.0))
                alpha[spread <= _REL_TOL * n2 * s2] = np.nan
                vals["alpha"] = alpha
        if self._corr_reuses_code:
            assert code_table is not None
            corr_table: np.ndarray | None = code_table
        elif self._corr is not None:
            corr_table = self._corr.table(w, *self._corr_shape)
        else:
            corr_table = None
        if corr_table is not None:
            vals["spearman"] = spearman_from_table(corr_table)
            vals["kendall"] = kendall_from_table(corr_table)
        else:
            vals["spearman"] = self._spearman_gather(w, total)
            vals["kendall"] = self._kendall_slow(w)
        for key in ("mean_bias", "mae", "pearson", "alpha", "spearman", "kendall"):
            if key in vals and key not in ns:
                ns[key] = total

    def _spearman_gather(self, w: np.ndarray, total: np.ndarray) -> np.ndarray:
        assert self._rank_x is not None and self._rank_y is not None
        rank_x = _centred_midranks(self._rank_x.sums(w), total)[:, self._ix]
        rank_y = _centred_midranks(self._rank_y.sums(w), total)[:, self._iy]
        cov = (w * rank_x * rank_y).sum(axis=1)
        var_x = (w * rank_x**2).sum(axis=1)
        var_y = (w * rank_y**2).sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = cov / np.sqrt(var_x * var_y)
        rho[(var_x <= 0) | (var_y <= 0)] = np.nan
        return rho

    def _kendall_slow(self, w: np.ndarray) -> np.ndarray:
        from scipy.stats import kendalltau

        out = np.full(w.shape[0], np.nan)
        for row in range(w.shape[0]):
            reps = w[row].astype(np.int64)
            xs = np.repeat(self.x, reps)
            ys = np.repeat(self.y, reps)
            if xs.size < 2 or np.ptp(xs) == 0 or np.ptp(ys) == 0:
                continue
            out[row] = float(kendalltau(xs, ys).statistic)
        return out

    # -- point-estimate diagnostics ------------------------------------------------------

    def reason(self, key: str) -> str:
        """Why ``key`` is undefined on the unweighted data (called only when it is NaN)."""
        if key.startswith("kappa"):
            return "only one category in the human consensus"
        if key == "alpha":
            return "no variation: the judge and the consensus all use the same single value"
        if key in ("spearman", "kendall", "pearson"):
            if np.unique(self.x).size < 2:
                return "no variance in the human consensus"
            return "no variance in the judge scores"
        if key == "tpr":
            return "no item with a positive human consensus"
        if key == "tnr":
            return "no item with a negative human consensus"
        return "undefined on these items"


# --------------------------------------------------------------------------- multi-coder alpha


class AlphaData:
    """Krippendorff's alpha among many coders, as a function of item weights.

    ``ratings`` is (items × raters) with NaN for missing ratings. Only items with two or more
    ratings are pairable (as in Krippendorff's definition). With per-item value counts
    ``c[u, v]`` and ``m[u] = sum_v c[u, v]``:

    * nominal: ``D_o = sum_u w_u (m_u^2 - sum_v c_uv^2) / (m_u - 1)``,
      ``D_e = (N^2 - sum_v n_v^2) / (N - 1)`` with ``n_v = sum_u w_u c_uv``;
    * interval: per item ``2 (m S2 - S1^2) / (m - 1)`` from its sum and sum of squares;
    * ordinal: interval on the ranks ``R_v = C_v - n_v / 2``, which depend on the weights, so
      ``D_o = 2 sum_v R_v^2 A_v - 2 sum_u w_u (c_u . R)^2 / (m_u - 1)``.

    ``alpha = 1 - D_o / D_e``.
    """

    def __init__(self, ratings: np.ndarray, level: Level, domain: np.ndarray | None) -> None:
        self.level = level
        rated = ~np.isnan(ratings)
        m = rated.sum(axis=1).astype(np.float64)
        keep = m >= 2
        self.items = np.flatnonzero(keep)
        m = m[keep]
        sub = ratings[keep]
        self.n_pairable = int(self.items.size)
        if level == "interval" or domain is None:
            centre = float(np.nanmean(sub)) if sub.size and rated[keep].any() else 0.0
            vals = np.where(np.isnan(sub), 0.0, sub - centre)
            s1 = vals.sum(axis=1)
            s2 = (vals**2).sum(axis=1)
            self._interval = np.column_stack([2.0 * (m * s2 - s1**2) / (m - 1.0), m, s1, s2])
            self._distinct = int(np.unique(sub[~np.isnan(sub)]).size)
        else:
            counts = np.empty((sub.shape[0], domain.size))
            for v, code in enumerate(domain):
                counts[:, v] = (sub == code).sum(axis=1)
            self._counts = counts
            self._inv_m1 = 1.0 / (m - 1.0)
            if level == "nominal":
                self._nominal_do = (m**2 - (counts**2).sum(axis=1)) * self._inv_m1
            else:
                self._ordinal_a = counts * (m * self._inv_m1)[:, None]
                # Pair products c_uc * c_uk / (m_u - 1) turn the within-item term into one
                # matrix product per batch (small value domains only).
                self._ordinal_q: np.ndarray | None = None
                if domain.size**2 <= 256:
                    self._ordinal_q = (counts[:, :, None] * counts[:, None, :]).reshape(
                        counts.shape[0], domain.size**2) * self._inv_m1[:, None]
            self._distinct = int((counts.sum(axis=0) > 0).sum())

    @property
    def distinct_values(self) -> int:
        """Distinct values among pairable ratings (alpha needs two)."""
        return self._distinct

    def compute(self, weights: np.ndarray) -> np.ndarray:
        """Alpha per row of ``weights`` (b, all items); NaN where undefined."""
        out = np.full(weights.shape[0], np.nan)
        if self.n_pairable == 0:
            return out
        for rows in _rows(weights.shape[0], self.n_pairable):
            out[rows] = self._compute(weights[rows][:, self.items])
        return out

    def _compute(self, w: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.level == "interval" or not hasattr(self, "_counts"):
                d_o_sum, n, s1, s2 = (w @ self._interval).T
                spread = n * s2 - s1**2
                d_e = 2.0 * spread / (n - 1.0)
                alpha = 1.0 - d_o_sum / d_e
                alpha[spread <= _REL_TOL * n * s2] = np.nan
                return np.asarray(alpha)
            n_v = w @ self._counts
            n = n_v.sum(axis=1)
            if self.level == "nominal":
                d_o = w @ self._nominal_do
                d_e = (n**2 - (n_v**2).sum(axis=1)) / (n - 1.0)
            else:
                pos = np.cumsum(n_v, axis=1) - n_v / 2.0 - n[:, None] / 2.0
                first = ((w @ self._ordinal_a) * pos**2).sum(axis=1)
                if self._ordinal_q is not None:
                    size = pos.shape[1]
                    pairs = (w @ self._ordinal_q).reshape(w.shape[0], size, size)
                    second = np.einsum("bck,bc,bk->b", pairs, pos, pos)
                else:
                    proj = self._counts @ pos.T  # (items, b)
                    second = (w * proj.T**2 * self._inv_m1[None, :]).sum(axis=1)
                d_o = 2.0 * (first - second)
                s1 = (n_v * pos).sum(axis=1)
                s2 = (n_v * pos**2).sum(axis=1)
                d_e = 2.0 * (n * s2 - s1**2) / (n - 1.0)
            alpha = 1.0 - d_o / d_e
        alpha[(n_v > 0).sum(axis=1) < 2] = np.nan
        return np.asarray(alpha)
