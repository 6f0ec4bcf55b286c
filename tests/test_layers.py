"""The shape of the code: data flows down the layers, no cycles, no module uses another's private names.

records/io <- features <- models <- predict/train <- cli/web (the README's map of the code).
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "idrkit"

LAYERS = {  # module (dotted, below idrkit) -> layer; a module imports only from its own layer or below
    "_version": 0, "errors": 0,
    "records": 1, "cache": 1, "mmseqs": 1,
    "regions": 2, "metrics": 2, "io": 2,
    "features": 3, "pretrained": 3,
    "models": 4,
    "predict": 5, "train": 5, "teachers": 5, "plots": 5,
    "cli": 6, "web": 6, "": 7,  # "": the package itself (its public API)
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def layer(name: str) -> int:
    return LAYERS[name.split(".")[0]]


def imports(path: Path):
    """(imported idrkit module, imported names) of every import in a file, nested ones included."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.startswith("idrkit"):
                target = node.module[len("idrkit"):].lstrip(".")
            else:
                continue
            names = [a.name for a in node.names]
            # "from . import x" may import a submodule x
            subs = [f"{target}.{n}".lstrip(".") for n in names if (SRC / Path(*f"{target}.{n}".lstrip(".").split("."))).with_suffix(".py").exists()
                    or (SRC / Path(*f"{target}.{n}".lstrip(".").split("."))).is_dir()]
            yield target, [n for n in names if f"{target}.{n}".lstrip(".") not in subs]
            for sub in subs:
                yield sub, []
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("idrkit"):
                    yield a.name[len("idrkit"):].lstrip("."), []


FILES = sorted(SRC.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in FILES:
        assert module_name(path).split(".")[0] in LAYERS, f"{path} is in no layer of the map"


def test_no_arrow_from_a_lower_layer_up():
    for path in FILES:
        me = module_name(path)
        for target, _ in imports(path):
            assert layer(target) <= layer(me), f"{me} (layer {layer(me)}) imports {target} (layer {layer(target)})"


def test_no_private_names_of_other_modules():
    for path in FILES:
        me = module_name(path)
        for target, names in imports(path):
            private = [n for n in names if n.startswith("_") and not n.startswith("__")]
            assert not private or target == me, f"{me} imports private {private} from {target}"


def test_import_graph_has_no_cycle():
    graph = {module_name(p): {t for t, _ in imports(p) if t != module_name(p)} for p in FILES}
    state = {}

    def visit(node, trail):
        if state.get(node) == "done":
            return
        assert state.get(node) != "open", "import cycle: " + " -> ".join(trail + [node])
        state[node] = "open"
        for nxt in graph.get(node, ()):
            visit(nxt, trail + [node])
        state[node] = "done"

    for node in graph:
        visit(node, [])
