"""The judgecal exception hierarchy.

The library raises these; only the CLI turns them into messages and exit codes.

    JudgecalError                 base class, message is shown to the user
    ├── InputError                bad user input (exit 2): set, config, imported file, option,
    │   │                         a store URL that cannot be used, an unwritable output path
    │   ├── ConfigError           a config file is invalid
    │   ├── CalibrationSetError   a calibration set is invalid
    │   └── NotFoundError         a run, incident or baseline the user named does not exist
    ├── StoreError                the run store cannot be used (e.g. its server is down)
    │   └── LockedError           another run of the same config holds the lock
    └── JudgeError                the judge endpoint failed in a way that is not retryable
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CalibrationSetError",
    "ConfigError",
    "InputError",
    "JudgeError",
    "JudgecalError",
    "LockedError",
    "NotFoundError",
    "Problem",
    "StoreError",
]


class JudgecalError(Exception):
    """Base class of every error judgecal raises on purpose; ``str()`` is user-facing."""


@dataclass(frozen=True)
class Problem:
    """One problem in an input file: where it is and what is wrong.

    ``file`` is the file's path, or ``""`` when the input is not a file (an option, a
    reference typed on the command line): the message then stands alone.
    """

    file: str
    message: str
    line: int | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = self.file
        if self.file and self.line is not None:
            where += f":{self.line}"
        if self.field:
            where += f"{': ' if where else ''}field '{self.field}'"
        return f"{where}: {self.message}" if where else self.message


class InputError(JudgecalError):
    """Invalid user input. Carries one :class:`Problem` per thing that is wrong.

    A plain string is a problem that is not in a file (an option, a reference): it is shown
    as it is. Input that comes from a file names it with a :class:`Problem`.
    """

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem(file="", message=problems)]
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


class NotFoundError(InputError):
    """A run, incident or baseline that does not exist was asked for.

    It is bad input (exit 2): the reference was typed by the user (or read from a file)."""
