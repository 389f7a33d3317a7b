"""Which failures are worth a retry: `@target(retry_on=..., no_retry=...)` and the default.

A retry helps when a failure may not happen again: a worker that died, a job
killed for going over its time or memory, an `OSError` (a file server that went
away, a full disk, a timeout), a `MemoryError`, an exception of the user's own.
It does not help a deterministic error in a target's code: run again with the
same arguments, it raises again. So by default these are not retried (the job
fails for good at once, its retries unspent):

    ArithmeticError (ZeroDivisionError, OverflowError), AssertionError,
    AttributeError, ImportError (ModuleNotFoundError), LookupError (KeyError,
    IndexError), NameError, NotImplementedError, SyntaxError, TypeError,
    ValueError (UnicodeError)

and every other exception is. A target changes that with
`@target(retry_on=(OSError, TimeoutError))` (only these, and their subclasses,
are retried) or `@target(no_retry=(MyError,))` (these too are not retried;
`no_retry` wins over `retry_on`).

Policies and exceptions are compared by name (`module.qualname` of each class in
the exception's MRO), not by class: a worker classifies what a target raised
(or what an isolated job's fresh process reported) and sends the leader a plain
verdict with the result, so the leader never loads a user's exception class.
"""

from __future__ import annotations

from typing import Any

from fntree.errors import ResourceError

DEFAULT_NO_RETRY: tuple[type[BaseException], ...] = (
    ArithmeticError, AssertionError, AttributeError, ImportError, LookupError, NameError,
    NotImplementedError, SyntaxError, TypeError, ValueError)


def type_names(kind: type) -> tuple[str, ...]:
    """`module.qualname` of `kind` and each of its bases, most derived first."""
    return tuple(f"{c.__module__}.{c.__qualname__}" for c in kind.__mro__ if c is not object)


_DEFAULT_NAMES = frozenset(type_names(c)[0] for c in DEFAULT_NO_RETRY)


def policy_names(what: str, value: Any) -> tuple[str, ...]:
    """The names of the exception classes `value` lists (a class or a tuple of them);
    ResourceError when it lists anything else."""
    classes = value if isinstance(value, (tuple, list, frozenset, set)) else (value,)
    for c in classes:
        if not (isinstance(c, type) and issubclass(c, BaseException)):
            raise ResourceError(f"{what}={value!r} must be an exception class or a tuple of "
                                "them, such as (OSError, TimeoutError)")
    return tuple(type_names(c)[0] for c in classes)


def worth_retry(raised: tuple[str, ...], retry_on: tuple[str, ...] | None = None,
                no_retry: tuple[str, ...] = ()) -> bool:
    """Whether an exception whose MRO names are `raised` is worth a retry, under a target's
    `retry_on` (None: the default) and `no_retry`."""
    if not raised:
        return True  # not an exception the target raised: a death, a limit, a lost file
    if any(name in no_retry for name in raised):
        return False
    if retry_on is not None:
        return any(name in retry_on for name in raised)
    return not any(name in _DEFAULT_NAMES for name in raised)


def verdict(raised: tuple[str, ...], target: Any) -> bool:
    """`worth_retry` under the policy of `target` (a Target, or None if it did not load)."""
    return worth_retry(raised, getattr(target, "retry_on", None),
                       getattr(target, "no_retry", ()))
