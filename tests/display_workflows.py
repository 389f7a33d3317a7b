"""Workflows for the display tests: many targets, jobs slow enough to be watched."""

from __future__ import annotations

import time

import fntree


def _step(i: int, delay: float) -> int:
    time.sleep(delay)
    return i


# Twelve targets with names of different lengths, so the table must collapse and cut them.
@fntree.target
def parse(i: int, delay: float) -> int:
    return _step(i, delay)


@fntree.target
def tokenize(i: int, delay: float) -> int:
    return _step(i, delay)


@fntree.target
def count_words_in_a_document_with_a_long_name(i: int, delay: float) -> int:
    return _step(i, delay)


@fntree.target
def stem(i: int, delay: float) -> int:
    return _step(i, delay)


@fntree.target
def lower(i: int, delay: float) -> int:
    return _step(i, delay)


@fntree.target
def strip(i: int, delay: float) -> int:
    return _step(i, delay)


@fntree.target
def dedupe(i: int, delay: float) -> int:
    return _step(i, delay)


@fntree.target
def sort_chunk(i: int, delay: float) -> int:
    return _step(i, delay)


@fntree.target
def merge(i: int, delay: float) -> int:
    return _step(i, delay)


@fntree.target
def index(i: int, delay: float) -> int:
    return _step(i, delay)


@fntree.target
def score(i: int, delay: float) -> int:
    return _step(i, delay)


@fntree.target
def report(i: int, delay: float) -> int:
    return _step(i, delay)


STAGES = [parse, tokenize, count_words_in_a_document_with_a_long_name, stem, lower, strip,
          dedupe, sort_chunk, merge, index, score, report]


@fntree.target
def total(values: list[int]) -> int:
    return sum(values)


@fntree.target
def words(n: int, delay: float = 0.2, targets: int = 12) -> fntree.Spawn:
    """`n` jobs spread over `targets` targets, then one that adds them up."""
    stages = STAGES[:targets]
    parts = [stages[i % len(stages)](i, delay) for i in range(n)]
    return fntree.children(*parts).then(total(parts))
