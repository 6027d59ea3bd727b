"""The ruler: what counts as an answer, registry claims, tool-call rulers, judges, summaries, selection.

Empty on purpose: importing one module of the stage must not import the others (rule inputs
are derived from imports, rules/sources.py)."""
