"""Source inputs of a script rule, derived from the script's imports (included by rules/common.smk).

Snakemake does not track the modules a `script:` imports, so each rule lists them as inputs: editing one
re-runs exactly the rules whose scripts import it (directly or transitively) and what lies downstream.
`package_sources` computes that list statically, with `ast` only (nothing is imported or executed):

  * start from the script's `import pkg...` / `from pkg... import name` statements, anywhere in the file;
  * `import pkg.a.b` imports pkg, pkg.a and pkg.a.b (each package's __init__.py runs), and
    `from pkg.a import b` also imports pkg.a.b when `b` is a submodule rather than a name;
  * follow every import statement of each reached package module the same way, including those inside
    functions and `if TYPE_CHECKING:` blocks (conservative: a lazy import counts as an import), and
    relative imports (`from .base import x`);
  * return the sorted files of the reached modules plus the package data files they read, taken from a
    {module file: glob} table the caller passes (rules/common.smk keeps it).

Plain Python without Snakemake globals, so tests/test_rule_inputs.py can import and unit-test it. As
Snakemake parses it too (`include:`), names must not be Snakemake keywords (module, rule, input, ...).
Dynamic imports (importlib.import_module("pkg.x")) are not seen; tests/test_rule_inputs.py catches those
that run when the script's imports do.
"""
import ast
import glob
import os


def package_sources(root, script, package, data=None):
    """Files under `root` (paths relative to it, sorted) that running `script` (relative to `root`)
    imports from `package`, plus the files of `data` ({module file: glob}, both relative to `root`)
    for every reached module."""
    root = os.fspath(root)
    todo = list(_imports(root, script, None, package))
    seen = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(_imports(root, _module_file(root, name), name, package))
    files = {_module_file(root, m) for m in seen}
    for module_file, pattern in (data or {}).items():
        if module_file in files:
            files.update(os.path.relpath(p, root) for p in glob.glob(os.path.join(root, pattern)))
    return sorted(files)


def _module_file(root, name):
    """Relative path of a dotted module's source (x.py or x/__init__.py), or None if it is not one."""
    base = os.path.join(*name.split("."))
    for rel in (base + ".py", os.path.join(base, "__init__.py")):
        if os.path.isfile(os.path.join(root, rel)):
            return rel
    return None


def _imports(root, rel_path, name, package):
    """Modules of `package` that the file `rel_path` (the module `name`; None for a script) imports,
    as dotted names that exist as files."""
    found = _imported_names(os.path.join(root, rel_path), name)
    return [m for m in sorted(found) if (m == package or m.startswith(package + ".")) and _module_file(root, m)]


_PARSED = {}  # (path, module name, mtime, size) -> imported names: each file is parsed once per process


def _imported_names(path, name):
    """Every dotted name an import statement anywhere in `path` may load (candidates: `from a import b`
    yields a and a.b, whether b is a submodule or not), relative imports resolved against `name`."""
    st = os.stat(path)
    key = (path, name, st.st_mtime_ns, st.st_size)
    if key in _PARSED:
        return _PARSED[key]
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), filename=path)
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.update(_with_parents(alias.name))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if name is None:  # a script is no package: it has no relative imports
                    continue
                # The importing module's package: itself for an __init__.py, else its parent.
                parts = name.split(".") if path.endswith("__init__.py") else name.split(".")[:-1]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            else:
                base = node.module
            found.update(_with_parents(base))
            # `from base import x`: x may be a submodule (kept by the caller only if such a file exists).
            found.update(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")
    _PARSED[key] = frozenset(found)
    return _PARSED[key]


def _with_parents(dotted):
    """pkg.a.b -> [pkg, pkg.a, pkg.a.b]: importing a submodule runs every parent package's __init__."""
    parts = dotted.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
