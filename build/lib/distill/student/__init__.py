"""The student stage: base model, chat renderer, training, decoding, prediction and export.

Empty on purpose: importing one module of the stage must not import the others (rule inputs
are derived from imports, rules/sources.py)."""
