"""Live progress: subscribers to the leader's events that show a run as it goes.

`RunView` is the model. It starts from the snapshot of the store's state that
each leader hands its subscribers (so it is true after a restart too), and its
hooks keep it true in O(1) per job: per target, the jobs waiting, ready,
queued, running, done (cached), failed and retried, in the words of
docs/states.md; the live chains, to know when a waiting job becomes ready; the
packets in flight, to know which job of each is running and since when; the
measured run times, for the time left; the last messages and failures. The
total is what is known so far: it grows as completions spawn children, and the
display says so.

Three views draw it:

- `LiveProgress`: a rich `Live` table on a terminal, redrawn by rich's own
  thread four times a second, so the leader pays only for the counting; it
  fits the terminal's width (80 columns and up): with more than 8 targets it
  shows the 7 busiest and one row for the others;
- `NotebookProgress`: the same table in a Jupyter cell, an HTML display that a
  thread updates twice a second (`fntree.run` adds it by itself in a notebook);
- `PlainProgress`: a progress line every few seconds, for logs and CI.

The leader's thread mutates the model while a drawing thread reads it: readers
copy the containers they walk (`list(d.values())` is atomic under the GIL) and
tolerate counts that are a moment apart.

The model is `progress.model`, the drawing `progress.render`, the three displays
`progress.displays`.
"""

from fntree.progress.displays import (
    LiveProgress,
    NotebookProgress,
    PlainProgress,
    in_notebook,
    notebook_display,
)
from fntree.progress.model import RunView
from fntree.progress.render import render

__all__ = ["LiveProgress", "NotebookProgress", "PlainProgress", "RunView", "in_notebook",
           "notebook_display", "render"]
