"""report.md "Constrained decoding": the same adapter scored with and without predict.constrain's rules.

The constraint makes grounded 1.0 and malformed calls impossible by construction, so its figures alone
would hide what the student learnt; this section puts the adapter's unconstrained figures beside them
and quotes questions whose answers the constraint changed.
"""

from __future__ import annotations

import pandas as pd

from distill.dataset.diagnostics import markdown_table
from distill.report.figures import HEADLINE, excerpt, fmt, stat, value, with_ci

CHANGED_SHOWN = 4  # questions quoted whose answer the constraint changed
ANSWER_CHARS = 160


def constraint_section(epoch: int, constrained: dict, constrained_table: pd.DataFrame, unconstrained: dict,
                       unconstrained_table: pd.DataFrame, constrain_cfg: dict) -> str:
    """Figures side by side (epoch `epoch`, both scored by the same ruler), loop failures, changed answers."""
    rules = ", ".join(k for k, on in constrain_cfg.items() if on) or "none"
    rows = []
    for name, score, table in (("constrained", constrained, constrained_table),
                               ("unconstrained", unconstrained, unconstrained_table)):
        failures = table["failure"].dropna().value_counts().to_dict()
        rows.append({"decoding": name,
                     **{m: with_ci(stat(score, m)) if m in ("tool_call", "judge") else fmt(value(score, m))
                        for m in (*HEADLINE[:1], "tool_call_strict", *HEADLINE[1:])},
                     "loop failures": ", ".join(f"`{k}` ×{n}" for k, n in sorted(failures.items())) or "none"})
    merged = constrained_table.merge(unconstrained_table, on="question", suffixes=("", "_free"))
    changed = merged[merged["pred_answer"].fillna("") != merged["pred_answer_free"].fillna("")]
    lines = [f"Epoch {epoch} (the last), the same adapter decoded with the rules on ({rules}) and off, "
             "scored by the same ruler. With the number rule every answer is grounded by construction "
             "(grounded equals answered: a non-answer is never grounded); the unconstrained row is what the "
             "student writes by itself.",
             markdown_table(pd.DataFrame(rows)),
             f"{len(changed)} of {len(merged)} final answers differ."]
    for _, r in changed.head(CHANGED_SHOWN).iterrows():
        lines.append(f"- {excerpt(r['question'], 100)}\n  - unconstrained: {excerpt(r['pred_answer_free'], ANSWER_CHARS)}"
                     f"\n  - constrained: {excerpt(r['pred_answer'], ANSWER_CHARS)}")
    return "\n\n".join(lines)
