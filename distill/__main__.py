"""`python -m distill serve | chat`: the distilled student in use, without Snakemake.

serve  the student behind the Anthropic Messages API (distill.serving.serve) on --host/--port (config `serve`),
       with the workbench chat page at `/` (distill.serving.chat_page);
       by default the base model plus the adapter results/selection.json picked; --adapter DIR (or
       `none` for the untrained base) or --model DIR (a merged export, results/export/merged) instead.
chat   ask the workbench assistant (distill.serving.assistant): one --question, or one question per stdin line;
       every tool call and result is shown, then who answered and the answer. --backend student |
       teacher | fallback; the student is reached at --url (a running `serve`) or, without --url,
       loaded in-process behind the same HTTP server on a free port.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from pathlib import Path
from typing import Iterator


from distill.contracts import read_parquet
from distill import config
from distill.serving.assistant import MODES, Assistant, StudentBackend, describe, make_teacher_backend
from distill.serving.chat_page import Workbench
from distill.serving.serve import ServerThread, StudentEngine, chosen_adapter, make_app, serve_forever
from distill.student.base_model import use_available_cores
from distill.student.constrain import ConstrainConfig

def load_engine(args: argparse.Namespace, cfg: dict) -> StudentEngine:
    """The model the arguments name: --model, else --base plus --adapter / serve.adapter / the selection's pick."""
    name, constrain = cfg["serve"]["model_name"], ConstrainConfig.from_cfg(cfg["predict"]["constrain"])
    if args.model:
        return StudentEngine.load(args.model, None, cfg["student"], name, constrain)
    adapter = args.adapter or cfg["serve"]["adapter"] or chosen_adapter(args.results)
    base = args.base or Path(args.results) / "base_model"
    return StudentEngine.load(base, None if str(adapter) == "none" else adapter, cfg["student"], name, constrain)


@contextlib.contextmanager
def student_url(args: argparse.Namespace, cfg: dict) -> Iterator[str]:
    """--url as given, or the student loaded here behind the real HTTP server on a free local port."""
    if args.url:
        yield args.url
        return
    with ServerThread(make_app(load_engine(args, cfg), max_request_mb=cfg["serve"]["max_request_mb"])) as server:
        yield server.url


def serve(args: argparse.Namespace, cfg: dict) -> None:
    use_available_cores()
    serve_forever(load_engine(args, cfg), args.host or cfg["serve"]["host"],
                  cfg["serve"]["port"] if args.port is None else args.port, Workbench.from_config(cfg, args.results),
                  cfg["serve"]["max_request_mb"])


def chat(args: argparse.Namespace, cfg: dict) -> None:
    questions = [args.question] if args.question else (line.strip() for line in sys.stdin)
    teacher = None
    if args.backend != "student":
        scenarios = Path(args.results) / "scenarios.parquet"
        grid = read_parquet(scenarios) if cfg["teacher"]["backend"] == "offline" and scenarios.exists() else None
        teacher = make_teacher_backend(cfg, grid, Path(args.results) / "cache")
    with contextlib.ExitStack() as stack:
        student = None
        if args.backend != "teacher":
            use_available_cores()
            url = stack.enter_context(student_url(args, cfg))
            student = StudentBackend(url, cfg["predict"]["max_new_tokens"], cfg["predict"]["max_turns"])
        assistant = Assistant(student, teacher, cfg["scoring"], cfg["claims"])
        for question in questions:
            if not question:
                continue
            try:
                print("\n".join(describe(assistant.answer(question, args.backend))), flush=True)
            except KeyError as exc:  # the simulator knows only the grid's questions; the next one may be one
                print(f"[teacher] {exc.args[0]}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m distill", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config.yaml", help="pipeline config (default: config.yaml)")
    parser.add_argument("--results", default="results", help="results tree with selection.json, adapter/, base_model/")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in ("serve", "chat"):
        p = sub.add_parser(command)
        p.add_argument("--adapter", help="adapter directory, or 'none' for the untrained base "
                                         "(default: config serve.adapter, else the epoch selection.json picked)")
        p.add_argument("--model", help="a merged model directory (results/export/merged) instead of base + adapter")
        p.add_argument("--base", help="base model directory (default: <results>/base_model)")
        if command == "serve":
            p.add_argument("--host", help="default: config serve.host")
            p.add_argument("--port", type=int, help="default: config serve.port")
        else:
            p.add_argument("--backend", choices=MODES, default="fallback")
            p.add_argument("--url", help="a running student server (python -m distill serve); default: load it here")
            p.add_argument("--question", help="ask once; default: one question per line of standard input")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.command == "chat" else logging.INFO,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        cfg = config.load(args.config)
    except (OSError, config.ConfigError) as exc:
        parser.error(str(exc))
    {"serve": serve, "chat": chat}[args.command](args, cfg)


if __name__ == "__main__":
    main()
