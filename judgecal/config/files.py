"""Reading config files: a judge file, a run config (YAML), with errors by file, line and field.

A *run config* (``configs/nightly.yaml``) names the store, the calibration set and the judge;
the judge may be inline or a path to its own YAML file. Relative paths inside a config are
resolved against the directory of the file that contains them.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import BaseModel, ValidationError

from judgecal.config.models import JudgeConfig, RunConfig, locate
from judgecal.errors import ConfigError, Problem
from judgecal.io import YamlDocument, field_text, load_yaml, validator_text
from judgecal.messages import model_keys, unknown_key_text

__all__ = [
    "DEFAULT_STORE_PATH",
    "load_config",
    "load_judge",
    "render_errors",
    "store_relative_to",
]


def render_errors(
    doc: YamlDocument, exc: ValidationError, prefix: tuple[str, ...] = (),
    model: type[BaseModel] | None = None,
) -> list[Problem]:
    """One problem per pydantic error; ``prefix`` is where the validated block sits in the
    file (its keys are not part of the field shown). An unknown key's message lists the
    keys ``model`` takes there, the closest first."""
    problems = []
    for err in exc.errors():
        loc = err["loc"]
        name = ".".join(str(p) for p in loc) or "(top level)"
        msg = validator_text(err["msg"])
        if err["type"] == "extra_forbidden":
            valid = model_keys(model, loc[:-1]) if model is not None and loc else None
            msg = unknown_key_text(loc[-1] if loc else "", valid)
        cause = (err.get("ctx") or {}).get("error")
        line, msg = locate(doc, (*prefix, *loc), msg, getattr(cause, "lineno", None))
        problems.append(Problem(file=str(doc.path), line=line, field=field_text(name),
                                message=msg))
    return problems


def load_judge(path: str | Path) -> JudgeConfig:
    """Read a judge config file (YAML)."""
    doc = load_yaml(path)
    try:
        return JudgeConfig.model_validate(doc.data).located(doc)
    except ValidationError as exc:
        raise ConfigError(render_errors(doc, exc, model=JudgeConfig)) from None


DEFAULT_STORE_PATH = ".judgecal/judgecal.db"
"""A config without ``store`` keeps its runs here, in the config's folder."""


def store_relative_to(url: str, base: Path) -> str:
    """``url`` with a relative SQLite file path made absolute under ``base``.

    >>> store_relative_to("sqlite:///runs.db", Path("/etc/judgecal"))
    'sqlite:////etc/judgecal/runs.db'
    >>> store_relative_to("postgresql://db/judgecal", Path("/x"))
    'postgresql://db/judgecal'
    """
    if "://" not in url:
        path = Path(url).expanduser()
        return f"sqlite:///{path if path.is_absolute() else os.path.normpath(base / path)}"
    match = re.match(r"^(sqlite(?:\+\w+)?):///(.*)$", url)
    if match is None:
        return url
    scheme, rest = match.groups()
    if not rest or rest.startswith(("/", ":memory:", "file:")):
        return url
    return f"{scheme}:///{os.path.normpath(base / rest)}"


def load_config(path: str | Path) -> RunConfig:
    """Read a run config (YAML). ``judge`` may be a mapping or the path of a judge file."""
    p = Path(path)
    doc = load_yaml(p)
    data = doc.data
    # Relative paths (store included) are the config's folder's, made absolute: the cron job,
    # a manual run and `judgecal schedule` use the same files wherever they are started.
    base = p.absolute().parent
    store = data.get("store")
    data["store"] = store_relative_to(store, base) if isinstance(store, str) else (
        f"sqlite:///{base / DEFAULT_STORE_PATH}" if store is None else store
    )
    judge = data.get("judge")
    inline = isinstance(judge, dict)
    if isinstance(judge, str):
        judge_path = (base / judge) if not Path(judge).is_absolute() else Path(judge)
        data["judge"] = load_judge(judge_path)
    if isinstance(data.get("calibration_set"), str):
        cs = Path(data["calibration_set"])
        data["calibration_set"] = cs if cs.is_absolute() else base / cs
    notify = data.get("notify")
    if isinstance(notify, dict) and isinstance(notify.get("prometheus_textfile"), str):
        prom = Path(notify["prometheus_textfile"])
        notify["prometheus_textfile"] = prom if prom.is_absolute() else base / prom
    try:
        config = RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(render_errors(doc, exc, model=RunConfig)) from None
    if inline:
        config.judge.located(doc, ("judge",))
    config.source = p
    return config
