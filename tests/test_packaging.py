"""The installed package is complete: every data file it reads ships in the wheel, and the config it
validates with is found without a checkout (distill.config reads the schema as package data)."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from distill import config

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "distill"


def package_data_globs() -> list[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return meta["tool"]["setuptools"]["package-data"]["distill"]


def test_every_package_data_glob_matches_a_file():
    """A glob that matches nothing (as "schemas/*.yaml" did) ships nothing, silently."""
    for pattern in package_data_globs():
        assert list(PKG.glob(pattern)), f"pyproject package-data {pattern!r} matches no file under distill/"


def test_every_data_file_of_the_package_ships():
    shipped = {p for pattern in package_data_globs() for p in PKG.glob(pattern)}
    data = {p for p in PKG.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc") and "__pycache__" not in p.parts}
    assert not sorted(str(p.relative_to(ROOT)) for p in data - shipped)


def test_schema_is_read_from_the_package_and_the_checkout_path_is_the_same_file():
    assert config.SCHEMA == yaml.safe_load((ROOT / "schemas" / "config.schema.yaml").read_text())
    assert (ROOT / "schemas" / "config.schema.yaml").resolve() == (PKG / "config.schema.yaml").resolve()


def test_defaults_fill_a_partial_config_and_unknown_keys_are_errors(tmp_path):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    del cfg["judge"]["rubric"], cfg["scoring"]["ship_bar"]["judge"]
    config.validate(cfg, "config.yaml")
    assert cfg["judge"]["rubric"]["contradiction_cap"] == 0.2 and cfg["scoring"]["ship_bar"]["judge"] == 0.7
    cfg["scoring"]["query_overlapp"] = 0.5
    try:
        config.validate(cfg, "my.yaml")
    except config.ConfigError as exc:
        assert str(exc).startswith("my.yaml: scoring: Additional properties") and "query_overlapp" in str(exc)
    else:
        raise AssertionError("a misspelt key must be an error")


def test_python_m_distill_names_the_bad_key(tmp_path):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["serve"]["port"] = "eighty"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "distill", "--config", str(bad), "serve"],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 2 and f"{bad}: serve.port: 'eighty' is not of type 'integer'" in proc.stderr
