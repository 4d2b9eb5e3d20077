"""The judgecal exception hierarchy.

The library raises these; only the CLI turns them into messages and exit codes.

    JudgecalError                 base class, message is shown to the user
    ├── InputError                bad user input (exit 2): set, config, imported file
    │   ├── ConfigError           a config file is invalid
    │   └── CalibrationSetError   a calibration set is invalid
    ├── StoreError                the run store cannot be used
    │   └── LockedError           another run of the same config holds the lock
    ├── JudgeError                the judge endpoint failed in a way that is not retryable
    └── NotFoundError             a run, incident or baseline that does not exist
"""

from __future__ import annotations

from dataclasses import dataclass


class JudgecalError(Exception):
    """Base class of every error judgecal raises on purpose; ``str()`` is user-facing."""


@dataclass(frozen=True)
class Problem:
    """One problem in an input file: where it is and what is wrong."""

    file: str
    message: str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            where += f": field '{self.field}'"
        return f"{where}: {self.message}"


class InputError(JudgecalError):
    """Invalid user input. Carries one :class:`Problem` per thing that is wrong."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(file="<input>", message=problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class ConfigError(InputError):
    """A configuration file is invalid."""


class CalibrationSetError(InputError):
    """A calibration set is invalid."""


class StoreError(JudgecalError):
    """The run store cannot be opened or migrated."""


class LockedError(StoreError):
    """Another run of the same configuration is in progress."""


class JudgeError(JudgecalError):
    """The judge endpoint failed in a way retries cannot fix (bad key, unknown model)."""


class NotFoundError(JudgecalError):
    """A run, incident or baseline that does not exist was asked for."""
