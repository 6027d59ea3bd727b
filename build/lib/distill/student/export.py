"""The chosen adapter merged into a float copy of the base: a plain checkpoint anyone can load.

`results/export/merged/` loads with `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer`, without
peft and without this package, and its tokenizer carries the project's renderer (distill.student.chat) as a
Jinja chat template, so `tokenizer.apply_chat_template(messages, tools=TOOLS)` renders exactly what the
student was trained on (tests/test_export.py checks the equality): the compact tool block, `<tool_call>`
calls and `<tool_response>` turns. Assistant turns sit inside `{% generation %}` markers, so
`return_assistant_tokens_mask=True` marks the same tokens as training's loss mask.

Why a float base: `merge_and_unload` on a 4-bit base dequantises, merges and requantises with rounding
error, so with `student.quantization: nf4` the base is reloaded in float (`student.dtype`) for the merge.
GGUF (llama.cpp) is an optional extra, not built here: llama.cpp's `convert_hf_to_gguf.py` converts this
directory.
"""

from __future__ import annotations

import json
from pathlib import Path

from distill.student.chat import SYSTEM_INSTRUCTION, system_prompt
from distill.io import atomic_dir
from distill.student.predict import load_student
from distill.student.base_model import resolve_base

EXPORT_FILE = "export.json"  # what was merged: base, adapter, dtype

# The renderer of distill.student.chat in Jinja. Tools come in Anthropic shape (name, description, input_schema) or
# the OpenAI/transformers shape ({"type": "function", "function": {name, description, parameters}});
# calls as {"name", "arguments"} (the project's schema) or {"function": {...}}, arguments as an object.
# The tool's purpose is the description up to "(" or the end of its first sentence (chat.tool_signature).
_TEMPLATE = (
    "{%- set ns = namespace(args='', p='', body='') -%}"
    "{{- '<|im_start|>system\\n' + INSTRUCTION_MODELS + '\\n<tools>\\n' -}}"
    "{%- for tool in (tools or []) -%}"
    "{%- set t = tool.function if tool.function is defined else tool -%}"
    "{%- set schema = t.input_schema if t.input_schema is defined else "
    "(t.parameters if t.parameters is defined else {}) -%}"
    "{%- set required = schema.required if schema.required is defined else [] -%}"
    "{%- set ns.args = '' -%}"
    "{%- for name, spec in (schema.properties if schema.properties is defined and schema.properties else {}).items() -%}"
    "{%- set ns.args = ns.args + (', ' if not loop.first else '') + name + ('' if name in required else '?') + ': '"
    " + ((spec.type if spec.type is defined else 'any') | string) -%}"
    "{%- endfor -%}"
    "{%- set d = t.description if t.description is defined and t.description else '' -%}"
    "{%- set ns.p = d.split('(')[0] -%}"
    "{%- for sep in ['. ', '.\\n', '.\\t', '.\\r', '.\\x0b', '.\\x0c'] -%}{%- set ns.p = ns.p.split(sep)[0] -%}{%- endfor -%}"
    "{%- if ns.p == d and ns.p.endswith('.') -%}{%- set ns.p = ns.p[:-1] -%}{%- endif -%}"
    "{%- set ns.p = ns.p | trim -%}"
    "{{- ('\\n' if not loop.first else '') + t.name + '(' + ns.args + ')' + ((': ' + ns.p) if ns.p else '') -}}"
    "{%- endfor -%}"
    "{{- '\\n</tools><|im_end|>\\n' -}}"
    "{%- set turns = messages | rejectattr('role', 'equalto', 'system') | list -%}"
    "{%- for m in turns -%}"
    "{%- if m.role == 'user' -%}"
    "{{- '<|im_start|>user\\n' + m.content + '<|im_end|>\\n' -}}"
    "{%- elif m.role == 'assistant' -%}"
    "{%- set ns.body = (m.content or '') | trim -%}"
    "{%- for c in (m.tool_calls or []) -%}"
    "{%- set f = c.function if c.function is defined else c -%}"
    "{%- set ns.body = ns.body + ('\\n' if ns.body else '') + '<tool_call>{\"name\": ' + (f.name | tojson)"
    " + ', \"arguments\": ' + (f.arguments | tojson) + '}</tool_call>' -%}"
    "{%- endfor -%}"
    "{{- '<|im_start|>assistant\\n' -}}{% generation %}{{- ns.body + '<|im_end|>' -}}{% endgeneration %}{{- '\\n' -}}"
    "{%- elif m.role == 'tool' -%}"
    "{{- '<|im_start|>user\\n' if loop.first or loop.previtem.role != 'tool' else '\\n' -}}"
    "{{- '<tool_response>' + m.content + '</tool_response>' -}}"
    "{{- '<|im_end|>\\n' if loop.last or loop.nextitem.role != 'tool' else '' -}}"
    "{%- else -%}"
    "{{- raise_exception('unknown message role ' + m.role) -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def chat_template() -> str:
    """The Jinja chat template equal to distill.student.chat.render / generation_prompt (for the model catalogue of
    distill.workbench.registry, which the system prompt names)."""
    fixed = system_prompt([]).removesuffix("\n<tools>\n\n</tools>")  # the instruction and the model catalogue
    if not fixed.startswith(SYSTEM_INSTRUCTION):
        raise AssertionError("distill.student.chat.system_prompt changed shape; update the export's chat template")
    return _TEMPLATE.replace("INSTRUCTION_MODELS", json.dumps(fixed))


def merge_adapter(base_dir: str | Path, adapter_dir: str | Path, out_dir: str | Path, dtype: str) -> None:
    """Merge `adapter_dir` into a float (`dtype`) copy of the base and save it, with the tokenizer and the chat
    template, at `out_dir` (atomically); never into a 4-bit base (module docstring)."""
    base = resolve_base(base_dir)
    model, tokenizer = load_student(Path(base), Path(adapter_dir), "none", dtype)  # float: merged in place
    tokenizer.chat_template = chat_template()
    with atomic_dir(Path(out_dir)) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / EXPORT_FILE).write_text(json.dumps({"base": base, "adapter": str(adapter_dir), "dtype": dtype}) + "\n")
