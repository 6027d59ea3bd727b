"""Rule evaluate_serving: the chosen adapter served over HTTP, the assistant in every mode on the held-out questions."""
import platform

from distill.serving.assistant import make_teacher_backend
from distill.contracts import read_json, read_parquet
from distill.io import setup_logging, write_json, write_parquet, write_text
from distill.serving.serve import StudentEngine
from distill.serving.serve_eval import consistency, render_markdown, run_modes, summarise
from distill.student.base_model import native_autocast, resolve_base, use_available_cores
from distill.student.constrain import ConstrainConfig

log = setup_logging(snakemake.log[0])
threads = use_available_cores()
cfg = snakemake.params.cfg
epoch = read_json(snakemake.input.selection)["task_epoch"]
scores_path = next(p for p in snakemake.input.scores if p.endswith(f"epoch_{epoch}.parquet"))
scores = read_parquet(scores_path, required=("trace_id", "question", "gold_calls", "gold_answer", "pred_answer"))
evals = read_parquet(snakemake.input.eval, required=("trace_id", "scenario_id", "template_id", "question"))
scenarios = {r["trace_id"]: r for r in evals.to_dict("records")}  # what the teacher simulator plays
adapter = f"{snakemake.input.adapter}/epoch_{epoch}"
engine = StudentEngine.load(snakemake.input.base, adapter, cfg["student"], cfg["serve"]["model_name"],
                            ConstrainConfig.from_cfg(cfg["predict"]["constrain"]))
teacher = make_teacher_backend(cfg, evals, snakemake.params.cache)
rows = run_modes(engine, scores, scenarios, teacher, cfg, host=cfg["serve"]["host"], cache_dir=snakemake.params.cache)
summary = summarise(rows)
agreement = consistency(rows, scores)
meta = {"scores": scores_path, "adapter": adapter, "base": resolve_base(snakemake.input.base),
        "autocast": (native_autocast(cfg["student"]["autocast"], engine.model.device)
                     if cfg["student"]["quantization"] == "none" else None),
        "teacher_backend": cfg["teacher"]["backend"], "teacher_model": cfg["teacher"]["model"],
        "machine": f"{platform.machine()} CPU, {threads} torch threads, no GPU"}
write_parquet(rows, snakemake.output.table)
write_json({"epoch": epoch, **meta, "modes": summary, "consistency": agreement}, snakemake.output.summary)
write_text(render_markdown(summary, agreement, meta), snakemake.output.md)
