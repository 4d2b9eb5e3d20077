"""What a run costs, and the gate that keeps a night within its budget.

* **Cost** (:func:`run_cost`): each answered reply is priced from the config's ``cost.prices``
  by the model that served it when that name is listed, else by the judge's requested
  model; prompt and completion tokens at their own price per million. Replies without token
  counts, or whose model has no price, are counted as *unpriced* (never as free).
* **Budget** (:class:`BudgetGate`): before each request the replay reserves its worst case —
  the rendered prompt's characters at the highest tokens-per-character ratio seen so far in
  this run (2 characters per token before any reply reports a count) plus
  ``decoding.max_tokens`` completion tokens, at the judge's model price — and the request is
  sent only if what was spent, plus every reservation in flight, plus this one stays within
  ``cost.budget_per_night`` (times 1 + ``parse_retries``: a reply may be re-asked). When a
  reply arrives its reservation is replaced by what it really cost (the reservation itself
  when it reported no counts). A live request that does not fit waits while other
  reservations are held (they are worst cases: most of them come back), and is refused only
  when it does not fit with none held. So the night can never pass its budget; the requests
  not sent leave the run inconclusive.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from judgecal.judge.completion import token_count

if TYPE_CHECKING:
    from judgecal.config import CostSettings, Price

__all__ = ["UNSET_MAX_TOKENS", "BudgetGate", "price_of", "reply_cost", "run_cost",
           "worst_request_cost"]

UNSET_MAX_TOKENS = 4096
"""Completion tokens a request is reserved at when the judge sets no ``max_tokens``."""

_CHARS_PER_TOKEN_BEFORE_ANY = 2.0
"""Before any reply reports its prompt tokens, a prompt is reserved at 2 characters per
token (English text runs about 4; code and many scripts fewer)."""


def price_of(cost: CostSettings, served: str | None, requested: str) -> Price | None:
    """The price of a reply: by the model that served it, else the requested one."""
    if served and served in cost.prices:
        return cost.prices[served]
    return cost.prices.get(requested)


def reply_cost(price: Price | None, prompt: Any, completion: Any) -> float | None:
    """The cost of one reply, or None when it cannot be priced."""
    p, c = token_count(prompt), token_count(completion)
    if price is None or p is None or c is None:
        return None
    return (p * price.prompt_per_million + c * price.completion_per_million) / 1e6


def worst_request_cost(price: Price, prompt_tokens: int, max_completion: int,
                       attempts: int) -> float:
    """The most one reply may cost: ``attempts`` requests of ``prompt_tokens`` each, every one
    answered with ``max_completion`` tokens."""
    return attempts * (prompt_tokens * price.prompt_per_million
                       + max_completion * price.completion_per_million) / 1e6


def run_cost(replies: Iterable[Mapping[str, Any]], cost: CostSettings,
             requested_model: str) -> dict[str, Any] | None:
    """``{"total", "currency", "priced", "unpriced", "by_model"}`` of a run's replies, or
    None when the config has no price table."""
    if not cost.prices:
        return None
    total = 0.0
    priced = unpriced = 0
    by_model: dict[str, float] = {}
    for r in replies:
        if r.get("raw_text") is None and r.get("status") != "scored":
            continue  # no answer arrived (a failed request): nothing billed that we know of
        served = r.get("served_model")
        value = reply_cost(price_of(cost, served, requested_model), r.get("prompt_tokens"),
                           r.get("completion_tokens"))
        if value is None:
            unpriced += 1
            continue
        priced += 1
        total += value
        name = served if served in cost.prices else requested_model
        by_model[name] = by_model.get(name, 0.0) + value
    return {"total": total, "currency": cost.currency, "priced": priced,
            "unpriced": unpriced, "by_model": by_model}


@dataclass
class BudgetGate:
    """Reserve before sending, settle on arrival; never let the night pass ``limit``."""

    limit: float
    price: Price
    max_completion: int
    spent: float = 0.0
    reserved: float = 0.0
    attempts: int = 1
    """Requests one reply may cost (1 + the judge's re-asks of unparseable replies)."""
    refused: int = 0
    held: int = 0
    """Reservations not yet settled or released."""
    _ratio: float = field(default=1.0 / _CHARS_PER_TOKEN_BEFORE_ANY)
    _seen: bool = False

    def _worst(self, prompt_chars: int) -> float:
        return worst_request_cost(self.price, math.ceil(prompt_chars * self._ratio),
                                  self.max_completion, self.attempts)

    def fits(self, prompt_chars: int) -> bool:
        """Whether a request of ``prompt_chars`` could be reserved now (nothing counted)."""
        return self.spent + self.reserved + self._worst(prompt_chars) <= self.limit + 1e-12

    def reserve(self, prompt_chars: int) -> float | None:
        """Reserve the worst case of one request; None (and counted) when it would pass the
        budget."""
        if not self.fits(prompt_chars):
            self.refused += 1
            return None
        worst = self._worst(prompt_chars)
        self.reserved += worst
        self.held += 1
        return worst

    def settle(self, reservation: float, prompt_chars: int, prompt_tokens: Any,
               completion_tokens: Any, price: Price | None) -> None:
        """Replace a reservation with what the reply cost."""
        self.reserved = max(self.reserved - reservation, 0.0)
        self.held = max(self.held - 1, 0)
        actual = reply_cost(price, prompt_tokens, completion_tokens)
        self.spent += reservation if actual is None else actual
        p = token_count(prompt_tokens)
        if p is not None and prompt_chars > 0:
            self._ratio = max(self._ratio if self._seen else 0.0, p / prompt_chars)
            self._seen = True

    def release(self, reservation: float) -> None:
        """A request that never got an answer (it failed): its reservation is freed; a
        failed request is assumed not billed (429s and 5xx are not)."""
        self.reserved = max(self.reserved - reservation, 0.0)
        self.held = max(self.held - 1, 0)

    def why_stopped(self, currency: str) -> str:
        return (f"the night's budget of {self.limit:g} {currency} (cost.budget_per_night) "
                f"would have been passed: spent {self.spent:.4f} {currency}; "
                f"{self.refused:,} request(s) not sent")
