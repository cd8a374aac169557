"""Errors that reach the user, each carrying the exit code the CLI returns for it.

The exit codes are a contract for build pipelines (docs/cli.md):
0 success; 1 a budget or check not met; 2 bad usage or bad input file;
3 a tool or backend failed; 130 interrupted.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    CHECK_FAILED = 1
    BAD_INPUT = 2
    TOOL_FAILED = 3
    INTERRUPTED = 130


class EdgepartError(Exception):
    """Base of every error shown to the user as one line on stderr; `details` may carry a report."""

    exit_code: ExitCode = ExitCode.TOOL_FAILED

    def __init__(self, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.details = details


class BadInputError(EdgepartError):
    """A file, option or value the user gave is wrong; the message names it."""

    exit_code = ExitCode.BAD_INPUT


class CheckFailedError(EdgepartError):
    """A budget cannot be met or a check (verify, accuracy) did not pass."""

    exit_code = ExitCode.CHECK_FAILED


class ToolError(EdgepartError):
    """A backend (TVM, onnxruntime, the solver) failed."""

    exit_code = ExitCode.TOOL_FAILED


class NotAvailableError(BadInputError):
    """A command or option that this version does not provide yet."""


def first_line(exc: BaseException, limit: int = 400) -> str:
    """What a third-party error (onnxruntime's, TVM's) says, in one line: its first line, else its
    type's name; at most `limit` characters."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]
