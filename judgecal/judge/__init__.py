"""The judge: how a request is rendered and a reply read, the OpenAI-compatible client, the
fingerprint.

:mod:`~judgecal.judge.prompt` renders the prompts and turns a reply into a score (and holds
the configured half of the fingerprint); :mod:`~judgecal.judge.client` sends the requests
(concurrency, rate limit, retries, deadline-friendly waits); :mod:`~judgecal.judge.completion`
reads a reply body defensively; :mod:`~judgecal.judge.fingerprint` compares what two runs
were configured with and what the provider says served them.
"""

from judgecal.judge.prompt import (
    ORIGINAL,
    SWAPPED,
    Parsed,
    PromptRenderer,
    configured_fingerprint,
    parse_reply,
)

__all__ = [
    "ORIGINAL",
    "SWAPPED",
    "Parsed",
    "PromptRenderer",
    "configured_fingerprint",
    "parse_reply",
]
