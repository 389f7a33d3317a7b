"""The crash-only runtime: job store, journal, state machine, leader and worker.

It knows jobs as records (`records.Spec`) and never imports the DSL above it.
"""
