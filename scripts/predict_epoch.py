"""Rules predict_epoch / predict_unconstrained: the student (base + epoch adapter) runs the agent loop on the
held-out questions, with or without predict.constrain's rules."""
from distill.contracts import read_parquet
from distill.io import setup_logging, write_parquet
from distill.student.constrain import UNCONSTRAINED, ConstrainConfig
from distill.student.predict import held_out_questions, load_student, predict, prediction_frame
from distill.student.base_model import for_inference, resolve_base, use_available_cores
from distill.workbench import tools

log = setup_logging(snakemake.log[0])
log.info("torch threads: %d", use_available_cores())
cfg = snakemake.params.cfg
pcfg = cfg["predict"]
evals = held_out_questions(read_parquet(snakemake.input.eval, required=("trace_id", "question", "gold_calls")),
                           pcfg["max_examples"], cfg["seed"])
epoch = int(snakemake.wildcards.epoch)
adapter = f"{snakemake.input.adapter}/epoch_{epoch}" if epoch else None  # epoch 0: the untrained base
st = cfg["student"]
model, tokenizer = load_student(resolve_base(snakemake.input.base), adapter, st["quantization"], st["dtype"])
model = for_inference(model, st["autocast"], st["quantization"])
records = predict(model, tokenizer, evals[["trace_id", "question"]].to_dict("records"), tools.TOOLS, tools.execute,
                  max_turns=pcfg["max_turns"], max_new_tokens=pcfg["max_new_tokens"], batch_size=pcfg["batch_size"],
                  constrain=ConstrainConfig.from_cfg(pcfg["constrain"]) if snakemake.params.constrained else UNCONSTRAINED)
out = prediction_frame(evals, records)
log.info("epoch %s: %d questions, failures %s", snakemake.wildcards.epoch, len(out), out["failure"].value_counts().to_dict())
write_parquet(out, snakemake.output[0])
