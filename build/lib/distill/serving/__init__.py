"""The student in use: the Messages API server, the assistant with fallback, the serving evaluation.

Empty on purpose: importing one module of the stage must not import the others (rule inputs
are derived from imports, rules/sources.py)."""
