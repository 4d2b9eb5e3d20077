"""Configuration: judges and nightly runs, validated strictly.

The models are :mod:`judgecal.config.models`; reading them from YAML files, with every
problem named by file, line and field, is :mod:`judgecal.config.files`.
"""

from judgecal.config.files import (
    DEFAULT_STORE_PATH,
    load_config,
    load_judge,
    render_errors,
    store_relative_to,
)
from judgecal.config.models import (
    DEFAULT_WEBHOOK_EVENTS,
    CostSettings,
    Decoding,
    DriftSettings,
    JudgeConfig,
    NotifySettings,
    ParseRule,
    Price,
    PromptSpec,
    RunConfig,
    RunSettings,
    TemplateSyntaxProblem,
    WebhookEvent,
    WebhookSettings,
)

__all__ = [
    "DEFAULT_STORE_PATH",
    "DEFAULT_WEBHOOK_EVENTS",
    "CostSettings",
    "Decoding",
    "DriftSettings",
    "JudgeConfig",
    "NotifySettings",
    "ParseRule",
    "Price",
    "PromptSpec",
    "RunConfig",
    "RunSettings",
    "TemplateSyntaxProblem",
    "WebhookEvent",
    "WebhookSettings",
    "load_config",
    "load_judge",
    "render_errors",
    "store_relative_to",
]
