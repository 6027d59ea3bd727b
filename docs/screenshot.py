"""docs/chat_page.png: the workbench chat page in headless Chromium, answering with the built student.

    python docs/screenshot.py [--mode fallback] [--question "..."] [--model-id ...] [--ticker ...]

Serves the student `python -m distill serve` would (results/base_model plus the adapter results/selection.json
picked, config.yaml's predict.constrain rules) with the chat page, asks one grid question through the page as
a user does (tests/browser drives the browser), and saves the page. Needs a built results/ tree and Chromium.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from distill import config  # noqa: E402
from distill.serving.chat_page import Workbench  # noqa: E402
from distill.serving.serve import ServerThread, StudentEngine, chosen_adapter, make_app  # noqa: E402
from distill.student.base_model import use_available_cores  # noqa: E402
from distill.student.constrain import ConstrainConfig  # noqa: E402
from tests.browser import ask_on_page, launch  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--results", default=str(ROOT / "results"))
    parser.add_argument("--mode", default="fallback")
    parser.add_argument("--model-id", default="ridge_forecaster")
    parser.add_argument("--ticker", default="ACME")
    parser.add_argument("--question", default="How is Ridge Return Forecaster validated?")
    parser.add_argument("--out", default=str(ROOT / "docs" / "chat_page.png"))
    args = parser.parse_args()
    cfg = config.load(ROOT / "config.yaml")
    use_available_cores()
    engine = StudentEngine.load(Path(args.results) / "base_model", chosen_adapter(args.results), cfg["student"],
                                cfg["serve"]["model_name"], ConstrainConfig.from_cfg(cfg["predict"]["constrain"]))
    with ServerThread(make_app(engine, Workbench.from_config(cfg, args.results))) as server, launch() as browser:
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        shown = ask_on_page(page, server.url, args.model_id, args.ticker, args.question, args.mode)
        page.screenshot(path=args.out, full_page=True)
    print(f"{args.out}: answered by {shown['verdict']['backend']} ({shown['verdict']['reason']}); "
          f"{shown['text_events']} text events")


if __name__ == "__main__":
    main()
