"""The recorded judge: an offline OpenAI-compatible server answering from real verdicts.

``judgecal serve-recorded`` (and :func:`judgecal.recorded.server.start_server` for tests
and the demo) serves ``POST /v1/chat/completions`` and ``GET /v1/models`` on localhost.
It finds which calibration item a judge prompt is about by the item's own texts and
answers with the verdict a real judge gave on that item, recorded in
``calibration_sets/<set>/recorded/``. It is the embedded default judge: every test of the
judge client goes through it over real HTTP.

Recordings (``judgecal serve-recorded --list``), named ``<set>:<name>``:

* ``pandalm:gpt-3.5-turbo``, ``pandalm:pandalm-7b`` — the PandaLM test set (999 items),
  verdict and reason of each judge. gpt-3.5-turbo: 460 × "1", 476 × "2", 38 ties and 25
  replies the source marks "garbage" (unparseable).
* ``llmbar:<judge>/<strategy>`` — LLMBar (419 items), 6 judges × up to 15 prompting
  strategies, e.g. ``llmbar:GPT-4/Vanilla``, ``llmbar:ChatGPT/CoT``,
  ``llmbar:GPT-4/Rating``: the original-order verdict, the verdict with the two outputs
  swapped, and the two scores of the Rating strategies.

Reply texts
-----------
PandaLM (like the PandaLM judge)::

    1

    Reason: Response 1 is better because ...

First line the verdict: ``1`` (response1 better), ``2`` (response2 better) or ``0`` (tie).

LLMBar: ``Output (a)`` or ``Output (b)``; Rating strategies ``Output (a): 7\\nOutput (b): 5``.
Verdicts are given in the prompt's own terms: when the prompt shows ``output_2`` before
``output_1`` (a swapped prompt), "Output (a)" is ``output_2`` and the reply is the judge's
recorded swapped-order verdict. A Rating reply to a swapped prompt shows the recorded
pair of scores in the prompt's positions (LLMBar recorded one pair per item).

No verdict: where the recorded judge gave none (the 25 PandaLM gpt-3.5 "garbage"
replies, an empty LLMBar winner, a Rating row with a missing score) the reply is
:data:`~judgecal.recorded.recordings.NO_VERDICT_REPLY`, a fixed text without a verdict
(the source kept only a marker, not the original text).

Matching a prompt to its item
-----------------------------
The prompt is all message contents joined. An item matches when all of its non-empty
text fields occur in it (whitespace-normalised): PandaLM ``instruction``, ``input``,
``response1``, ``response2``; LLMBar ``input``, ``output_1``, ``output_2``. The judge
client sends the header ``X-Judgecal-Item-Id: <item id>`` on every request; when it
names an item whose texts are in the prompt, that item is used (this is how items with
identical texts are told apart, and it is the fast path). Without it, several matching
items whose replies are identical are answered; otherwise the reply is an error. The
rules for texts contained in other texts are in :mod:`judgecal.recorded.recordings`.
PandaLM has no swapped-order verdicts: a PandaLM prompt showing ``response2`` first is
an error. An item with an empty compared text cannot show its order and counts as
original.

Errors (OpenAI-style body ``{"error": {"message", "type", "param", "code"}}``):

=====  =========================  ====================================================
404    ``no_recorded_item``       no item has all of its texts in the prompt
404    ``no_recorded_verdict``    the item is shown in an order the recording lacks
409    ``ambiguous_prompt``       several items match and their replies differ; the
                                  message lists them (``matches items ['12', '15']``)
404    ``model_not_found``        the requested model has no recording (no ``*`` alias)
400    ``invalid_request_error``  malformed body
=====  =========================  ====================================================

Replies
-------
``chat.completion`` JSON: ``id``, ``created``, ``model`` (the ``model_id`` setting, else
the requested model echoed back, as llama.cpp does), one choice with ``finish_reason``
``"stop"`` (``"length"`` when ``max_tokens``/``max_completion_tokens`` is smaller than
the reply, which is then cut), ``usage`` with *estimated* token counts (characters / 4,
rounded up; no tokenizer is involved), and ``system_fingerprint`` only when configured.
``stream: true`` gets SSE ``chat.completion.chunk`` events: a role chunk, content
chunks, a chunk with the finish reason, a usage chunk if ``stream_options.include_usage``,
then ``data: [DONE]``. ``n > 1`` still gets one choice. Response headers
``X-Judgecal-Item-Id``, ``X-Judgecal-Swapped``, ``X-Judgecal-Recording`` and (for an
injected fault) ``X-Judgecal-Fault`` say what was served.

Profiles
--------
``profile`` (``--profile``) picks which server the recorded judge imitates
(:data:`~judgecal.recorded.state.PROFILES`). ``default``: the behaviour above, requests
answered concurrently. ``llamacpp``: what a local llama.cpp server does — the reply's
``model`` always echoes the requested name (``model_id`` is ignored), there is never a
``system_fingerprint`` (the setting is ignored), ``max_completion_tokens`` is ignored (only
``max_tokens`` cuts the reply, with ``finish_reason`` ``"length"``), and one request is
answered at a time: the others wait their turn (latency included), and one whose client
hangs up while waiting is dropped unanswered. The ``no-finish-reason`` and ``no-usage``
faults add the replies such a server sends when a generation is cut off or reports no
token counts.

Control endpoints (localhost only, no authentication): ``GET /_judgecal/stats``
(requests and served replies per item and per model, fault and error counts, requests
whose body repeated one already received for the same item — ``repeated_requests`` —,
the most requests answered at once — ``max_concurrent``),
``POST /_judgecal/reset-stats``, ``GET``/``POST /_judgecal/config`` (change recordings,
model id, faults, latency at runtime, e.g. to swap the model behind an alias silently).

Fault injection: :mod:`judgecal.recorded.faults`.

Batch API: ``/v1/files`` and ``/v1/batches`` (upload, create, look, cancel, list, result
files), each line answered as the live route answers it, with a slow batch, expiry with a
partial output, error-file lines and reordered results on request:
:mod:`judgecal.recorded.batch`.
"""

from judgecal.recorded.faults import FAULT_KINDS, JUNK_REPLY
from judgecal.recorded.recordings import (
    NO_VERDICT_REPLY,
    RecordingInfo,
    list_recordings,
    load_recording,
)
from judgecal.recorded.server import (
    ITEM_HEADER,
    PROFILES,
    RunningServer,
    ServerConfig,
    start_server,
)

__all__ = [
    "FAULT_KINDS",
    "ITEM_HEADER",
    "JUNK_REPLY",
    "NO_VERDICT_REPLY",
    "PROFILES",
    "RecordingInfo",
    "RunningServer",
    "ServerConfig",
    "list_recordings",
    "load_recording",
    "start_server",
]
