"""The dataset stage: scenario grid, grounding filter, gold corrections, split and DuckDB diagnostics.

Empty on purpose: importing one module of the stage must not import the others (rule inputs
are derived from imports, rules/sources.py)."""
