"""Which source files a paper's results depend on, and their content hashes.

A verify records the hash of every file in its paper's closure: the paper's folder and every
module of this repository that it imports, found statically (import statements, and strings
naming a module such as the registry's "module.path:Name" in configs). The report compares
them with the checkout to tell a current result from a stale one without needing git: a dirty
tree, a copy without .git and a squashed history all compare the same way.
"""

from __future__ import annotations

import ast
import hashlib
import pathlib

REPO = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("lib", "experiments", "configs")


def _module_file(name: str, root: pathlib.Path) -> pathlib.Path | None:
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    base = root.joinpath(*parts)
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imported(path: pathlib.Path, root: pathlib.Path) -> set[str]:
    """Module names `path` refers to: its imports (with their packages) and module strings."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except (SyntaxError, ValueError):  # still fingerprinted: a broken file is a change
        return set()
    package = ".".join(path.relative_to(root).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)  # submodules imported by name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            head = node.value.partition(":")[0]
            if head.replace(".", "").replace("_", "").isalnum() and "." in head:
                names.add(head)
    expanded = set()
    for name in names:
        parts = name.split(".")
        expanded.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return expanded


def paper_files(slug: str, root: pathlib.Path = REPO) -> list[str]:
    """The repository files (relative paths) that experiments/`slug` runs: its own .py files and
    everything they import from lib/, experiments/ and configs/, transitively."""
    todo = sorted((root / "experiments" / slug).rglob("*.py"))
    seen: set[pathlib.Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for parent in path.relative_to(root).parents:  # importing runs each package's __init__
            if (init := root / parent / "__init__.py").is_file() and init not in seen:
                todo.append(init)
        for name in _imported(path, root):
            found = _module_file(name, root)
            if found is not None and found not in seen:
                todo.append(found)
    return sorted(str(p.relative_to(root)) for p in seen)


def fingerprint(slug: str, root: pathlib.Path = REPO) -> dict[str, str]:
    """{relative path: sha256 prefix} of `paper_files(slug)`."""
    return {f: hashlib.sha256((root / f).read_bytes()).hexdigest()[:16]
            for f in paper_files(slug, root)}


def changes(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """What differs between two fingerprints, one "path (changed|new|removed)" per file."""
    out = [f"{f} (changed)" for f in sorted(recorded.keys() & current.keys())
           if recorded[f] != current[f]]
    out += [f"{f} (new)" for f in sorted(current.keys() - recorded.keys())]
    out += [f"{f} (removed)" for f in sorted(recorded.keys() - current.keys())]
    return out
