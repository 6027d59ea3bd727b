"""The pipeline config: one validation, used by the Snakefile, by every variant and by `python -m distill`.

The schema (distill/config.schema.yaml, also reached as schemas/config.schema.yaml) is the only place
defaults live: validation fills every missing key that has a `default`, recursively (a missing section
whose required keys all have defaults is created), so code reads `cfg[key]` and never repeats a default.
Unknown keys are errors (`additionalProperties: false`), so a misspelt key cannot be silently ignored.
The schema ships inside the package, so an installed `distill` finds it without a checkout.
"""

from __future__ import annotations

import copy
from importlib import resources
from typing import Any

import jsonschema
import yaml

SCHEMA: dict = yaml.safe_load((resources.files("distill") / "config.schema.yaml").read_text(encoding="utf-8"))


class ConfigError(ValueError):
    """A config that does not match the schema; the message names the file and the key."""


def _fills(schema: dict) -> bool:
    """Whether a missing object of this schema can be created from defaults alone."""
    props = schema.get("properties", {})
    return schema.get("type") == "object" and all("default" in props.get(k, {}) or _fills(props.get(k, {}))
                                                   for k in schema.get("required", []))


def _set_defaults(validator: Any, properties: dict, instance: Any, schema: dict):
    if isinstance(instance, dict):
        for key, sub in properties.items():
            if key in instance:
                continue
            if "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            elif sub.get("properties") and _fills(sub):
                instance[key] = {}  # validated next, which fills its own defaults
    yield from _PROPERTIES(validator, properties, instance, schema)


_PROPERTIES = jsonschema.Draft202012Validator.VALIDATORS["properties"]
_Filling = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"properties": _set_defaults})


def _where(error: jsonschema.ValidationError) -> str:
    return ".".join(str(p) for p in error.absolute_path) or "(top level)"


def validate(cfg: dict, source: str = "config", schema: dict | None = None) -> dict:
    """Check `cfg` against the schema and fill its defaults, in place; returns `cfg`.

    Raises ConfigError naming `source` (the file), the key and what is wrong with it.
    """
    errors = sorted(_Filling(schema or SCHEMA).iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ConfigError(f"{source}: {_where(first)}: {first.message}{more}")
    return cfg


def section_schema(*keys: str) -> dict:
    """The schema of one config section, e.g. section_schema("judge", "rubric")."""
    node = SCHEMA
    for key in keys:
        node = node["properties"][key]
    return node


def defaults(*keys: str) -> dict:
    """A config section holding only its schema defaults, e.g. defaults("judge") for a judge with no
    settings of its own (tests, and callers outside the pipeline)."""
    return validate({}, "/".join(keys) or "config", section_schema(*keys))


def sections(cfg: dict, *keys: str, source: str = "config") -> dict:
    """A copy of the top-level `keys` of `cfg`, validated, each missing one filled from the schema: for
    callers that read a few sections (a comparison reads seed, scoring and report)."""
    schema = {"type": "object", "additionalProperties": False,
              "properties": {k: SCHEMA["properties"][k] for k in keys}}
    return validate(copy.deepcopy({k: cfg[k] for k in keys if k in cfg}), source, schema)


def load(path: str) -> dict:
    """A config file, validated with defaults filled."""
    with open(path, encoding="utf-8") as fh:
        return validate(yaml.safe_load(fh) or {}, path)
