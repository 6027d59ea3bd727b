"""Rules predict_epoch / predict_unconstrained: the student (base + epoch adapter) runs the agent loop on the
held-out questions, with or without predict.constrain's rules."""
import pandas as pd

from distill.io import dumps, read_parquet, setup_logging, write_parquet
from distill.student.constrain import UNCONSTRAINED, ConstrainConfig
from distill.student.predict import load_student, predict
from distill.dataset.split import sample_per_category
from distill.student.base_model import for_inference, resolve_base, use_available_cores
from distill.workbench import tools

log = setup_logging(snakemake.log[0])
log.info("torch threads: %d", use_available_cores())
cfg = snakemake.params.cfg
pcfg = cfg["predict"]
# One row per distinct question: the grid repeats methodology questions, and greedy decoding would
# answer every copy the same way, so copies would only weigh that question more in the scores.
evals = read_parquet(snakemake.input.eval, required=("trace_id", "question", "gold_calls")).drop_duplicates("question")
evals = sample_per_category(evals, pcfg["max_examples"], cfg["seed"])
epoch = int(snakemake.wildcards.epoch)
adapter = f"{snakemake.input.adapter}/epoch_{epoch}" if epoch else None  # epoch 0: the untrained base
st = cfg["student"]
model, tokenizer = load_student(resolve_base(snakemake.input.base), adapter, st["quantization"], st["dtype"])
model = for_inference(model, st["autocast"], st["quantization"])
records = predict(model, tokenizer, evals[["trace_id", "question"]].to_dict("records"), tools.TOOLS, tools.execute,
                  max_turns=pcfg["max_turns"], max_new_tokens=pcfg["max_new_tokens"], batch_size=pcfg["batch_size"],
                  constrain=ConstrainConfig.from_cfg(pcfg["constrain"]) if snakemake.params.constrained else UNCONSTRAINED)
out = pd.DataFrame({
    **{c: evals[c] for c in ("trace_id", "category", "model_id", "model_kind", "ticker", "question", "gold_calls")},
    "gold_answer": evals["final_answer"],
    "pred_calls": [dumps(r["pred_calls"]) for r in records],
    "pred_answer": [r["pred_answer"] for r in records],
    "tool_outputs": [dumps(r["tool_outputs"]) for r in records],
    "failure": [r["failure"] for r in records],
    "n_turns": [r["n_turns"] for r in records],
    "raw_turns": [dumps(r["raw_turns"]) for r in records],
})
log.info("epoch %s: %d questions, failures %s", snakemake.wildcards.epoch, len(out), out["failure"].value_counts().to_dict())
write_parquet(out, snakemake.output[0])
