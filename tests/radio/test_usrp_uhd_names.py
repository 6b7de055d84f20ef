"""Every ``uhd`` name radio/usrp.py uses exists in the real UHD Python API, and its calls fit the signatures.

The uses are read from radio/usrp.py's syntax tree, following values from the ``uhd`` module through
assignments, constructor calls and method results (``self._usrp = uhd.usrp.MultiUSRP(...)``, ``md =
uhd.types.RXMetadata()``, ``self._rx_stream = self._usrp.get_rx_stream(...)`` ...), so a new call in the backend
is checked without touching this file. The real API is introspected by whichever Python can import ``uhd``
(Debian's python3-uhd serves the system interpreter, built against numpy 1.x, not the project's environment), in
a subprocess; without one the check is skipped. tests/fakes/fake_uhd.py is held to the same API: it must not
offer a name the real module lacks.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fakes import fake_uhd

USRP_SOURCE = Path(__file__).resolve().parents[2] / "radio" / "usrp.py"

Symbol = tuple  # ("path", "uhd.types.X") | ("instance", sym) | ("attr", sym, name) | ("return", sym, name)


class _UhdUseCollector:
    """Abstract interpretation of radio/usrp.py: which values come from ``uhd``, and what is done with them."""

    def __init__(self, tree: ast.Module):
        self.tree = tree
        self.self_attrs: dict[str, Symbol] = {"_uhd": ("path", "uhd")}
        self.uses: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.module_functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
        self._entered: set[tuple[str, tuple[Any, ...]]] = set()

    def run(self) -> list[dict[str, Any]]:
        functions = [n for n in ast.walk(self.tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for _ in range(2):  # the second pass knows the self attributes every method assigned
            for fn in functions:
                env: dict[str, Symbol] = {"uhd": ("path", "uhd")}
                for stmt in fn.body:
                    self._stmt(stmt, env)
        return [{"symbol": k[0], "attr": k[1], **v} for k, v in sorted(self.uses.items(), key=repr)]

    def _stmt(self, node: ast.AST, env: dict[str, Symbol]) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return
        if isinstance(node, ast.Assign):
            value = self._eval(node.value, env)
            for target in node.targets:
                self._bind(target, node.value, value, env)
            return
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.stmt):
                self._stmt(child, env)
            else:
                self._eval(child, env)

    def _bind(self, target: ast.AST, value_node: ast.AST, value: Symbol | None, env: dict[str, Symbol]) -> None:
        if isinstance(target, ast.Tuple) and isinstance(value_node, ast.Tuple):
            for t, v in zip(target.elts, value_node.elts):
                self._bind(t, v, self._eval(v, env), env)
        elif isinstance(target, ast.Name) and value is not None:
            env[target.id] = value
        elif isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name) and target.value.id == "self":
            if value is not None:
                self.self_attrs[target.attr] = value
        elif isinstance(target, ast.Attribute):
            self._eval(target, env)  # md.start_of_burst = True: the attribute must exist

    def _record(self, base: Symbol, attr: str, call: ast.Call | None, line: int) -> None:
        use = self.uses.setdefault((base, attr), {"calls": [], "lines": []})
        use["lines"].append(line)
        if call is not None:
            use["calls"].append({"positional": len(call.args), "keywords": [k.arg for k in call.keywords if k.arg]})

    def _enter(self, fn: ast.FunctionDef, args: list[Symbol | None]) -> None:
        """Walk a module-level helper with the symbols its arguments carry (``_range(u.get_rx_gain_range(c))``)."""
        key = (fn.name, tuple(args))
        if key in self._entered or not any(args):
            return
        self._entered.add(key)
        env: dict[str, Symbol] = {"uhd": ("path", "uhd")}
        for param, value in zip(fn.args.args, args):
            if value is not None:
                env[param.arg] = value
        for stmt in fn.body:
            self._stmt(stmt, env)

    def _eval(self, node: ast.AST, env: dict[str, Symbol], call: ast.Call | None = None) -> Symbol | None:
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return self.self_attrs.get(node.attr)
            base = self._eval(node.value, env)
            if base is None:
                return None
            self._record(base, node.attr, call, node.lineno)
            if base[0] == "path":
                return ("path", f"{base[1]}.{node.attr}")
            return ("attr", base, node.attr)
        if isinstance(node, ast.Call):
            func = self._eval(node.func, env, call=node)
            args = [self._eval(arg, env) for arg in node.args]
            for k in node.keywords:
                self._eval(k.value, env)
            if isinstance(node.func, ast.Name) and node.func.id in self.module_functions:
                self._enter(self.module_functions[node.func.id], args)
            if func is None:
                return None
            if func[0] == "path":
                if isinstance(node.func, ast.Attribute) or func[1] != "uhd":
                    self._record(func, "__call__", node, node.lineno)
                return ("instance", func)
            return ("return", func[1], func[2])
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.stmt):
                self._eval(child, env)
        return None


def backend_uses() -> list[dict[str, Any]]:
    """What radio/usrp.py does with ``uhd``: one entry per (value, attribute) with its call shapes and lines."""
    return _UhdUseCollector(ast.parse(USRP_SOURCE.read_text(), str(USRP_SOURCE))).run()


_INTROSPECT = r'''
import inspect, json, re, sys
import uhd

def class_by_name(name):
    """A class for a pybind11 docstring type: 'uhd.libpyuhd.types.meta_range_t' or 'uhd::rx_streamer'."""
    short = re.split(r"[.:]+", name)[-1]
    seen = {}
    def walk(mod, depth=0):
        for attr in dir(mod):
            obj = getattr(mod, attr, None)
            if inspect.isclass(obj):
                seen.setdefault(obj.__name__, obj)
                seen.setdefault(attr, obj)
            elif inspect.ismodule(obj) and obj.__name__.startswith("uhd") and depth < 3:
                walk(obj, depth + 1)
    walk(uhd)
    return seen.get(short)

def signatures(fn):
    """[(required, total, names)] for each overload, from the pybind11 docstring or Python's signature."""
    try:
        sig = inspect.signature(fn)
        params = [p for p in sig.parameters.values() if p.name != "self"]
        if not any(p.kind == p.VAR_POSITIONAL for p in params) or len(params) > 2:
            req = sum(1 for p in params if p.default is p.empty and p.kind == p.POSITIONAL_OR_KEYWORD)
            return [(req, len(params), [p.name for p in params])]
    except (TypeError, ValueError):
        pass
    out = []
    for m in re.finditer(r"^(?:\d+\. )?\w+\((.*)\) ->", fn.__doc__ or "", re.M):
        args = [a.strip() for a in re.split(r",(?![^\[]*\])", m.group(1)) if a.strip()]
        args = [a for a in args if not a.startswith("self")]
        names = [a.split(":")[0].strip() for a in args]
        out.append((sum(1 for a in args if "=" not in a), len(args), names))
    return out

def returns(fn):
    m = re.search(r"\) -> ([\w.:\[\], ]+)", fn.__doc__ or "")
    return m.group(1).strip() if m else None

def resolve(sym):
    """The Python object (class, module, enum value) a collector symbol stands for, or None."""
    kind = sym[0]
    if kind == "path":
        obj = uhd
        for part in sym[1].split(".")[1:]:
            obj = getattr(obj, part)
        return obj
    if kind == "instance":
        return resolve(sym[1])
    owner = resolve(sym[1])
    member = getattr(owner, sym[2])
    if kind == "attr":
        if isinstance(member, property):
            try:
                return type(getattr(owner(), sym[2]))
            except Exception:
                return None
        return member
    if kind == "return":
        ret = returns(member)
        return class_by_name(ret) if ret else None
    raise ValueError(sym)

def tup(x):
    return tuple(tup(i) for i in x) if isinstance(x, list) else x

request = json.load(sys.stdin)
report = []
for use in request["uses"]:
    sym, attr = tup(use["symbol"]), use["attr"]
    entry = {"symbol": use["symbol"], "attr": attr, "lines": use["lines"], "problems": []}
    try:
        owner = resolve(sym)
    except Exception as e:
        entry["problems"].append(f"cannot resolve {sym}: {e!r}")
        report.append(entry)
        continue
    if owner is None:
        entry["problems"].append(f"unknown type for {sym}")
    elif attr == "__call__":
        fn = owner.__init__ if inspect.isclass(owner) else owner
        entry["resolved"] = getattr(owner, "__qualname__", str(owner))
        sigs = signatures(fn)
        for call in use["calls"]:
            if sigs and not any(r <= call["positional"] <= t and set(call["keywords"]) <= set(n) for r, t, n in sigs):
                entry["problems"].append(f"call with {call} fits no signature of {sym} ({sigs})")
    elif not hasattr(owner, attr):
        entry["problems"].append(f"{getattr(owner, '__qualname__', owner)} has no attribute {attr!r}")
    else:
        entry["resolved"] = f"{getattr(owner, '__qualname__', owner)}.{attr}"
        member = getattr(owner, attr)
        sigs = signatures(member) if callable(member) and not inspect.isclass(member) else []
        for call in use["calls"]:
            if sigs and not any(r <= call["positional"] <= t and set(call["keywords"]) <= set(n) for r, t, n in sigs):
                entry["problems"].append(f"{attr}{call} fits no signature ({sigs})")
    report.append(entry)
exists = {}
for path in request["paths"]:
    obj, ok = uhd, True
    for part in path.split(".")[1:]:
        if not hasattr(obj, part):
            ok = False
            break
        obj = getattr(obj, part)
    exists[path] = ok
json.dump({"uses": report, "exists": exists}, sys.stdout)
'''

_FAKE_TO_REAL = {"_RxStreamer": "uhd.usrp.RXStreamer", "_TxStreamer": "uhd.usrp.TXStreamer",
                 "_TimeSpec": "uhd.types.TimeSpec", "_Sensor": "uhd.types.SensorValue",
                 "MetaRange": "uhd.types.MetaRange"}
_DEVICE_CLASSES = {"MultiUSRP", "_RxStreamer", "_TxStreamer"}  # their instance data are the fake's test hooks


def fake_surface() -> list[str]:
    """Every public name the fake offers as UHD API, as the real dotted path it stands for."""
    import enum
    import inspect

    paths: list[str] = []
    classes: dict[str, type] = {}
    for ns_name in ("usrp", "types"):
        for name, obj in vars(getattr(fake_uhd, ns_name)).items():
            paths.append(f"uhd.{ns_name}.{name}")
            classes[f"uhd.{ns_name}.{name}"] = obj
    for name, real in _FAKE_TO_REAL.items():
        classes[real] = getattr(fake_uhd, name)
        paths.append(real)
    for real, cls in classes.items():
        if issubclass(cls, enum.Enum):
            paths += [f"{real}.{m}" for m in cls.__members__]
            continue
        paths += [f"{real}.{n}" for n, v in vars(cls).items() if not n.startswith("_") and inspect.isfunction(v)]
        if cls.__name__ not in _DEVICE_CLASSES:
            try:
                instance = cls.__new__(cls)
                cls.__init__(instance, *([fake_uhd.StreamMode.num_done] if cls is fake_uhd.StreamCMD else
                                         ["fc32", "sc16"] if cls is fake_uhd.StreamArgs else
                                         [1e9] if cls is fake_uhd.TuneRequest else []))
            except TypeError:
                continue
            paths += [f"{real}.{n}" for n in vars(instance) if not n.startswith("_")]
    return sorted(set(paths))


def _uhd_python() -> str | None:
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3"):
        if candidate and Path(candidate).exists():
            probe = subprocess.run([candidate, "-c", "import uhd"], capture_output=True, text=True, timeout=120)
            if probe.returncode == 0:
                return candidate
    return None


def introspect(python: str, uses: list[dict[str, Any]], paths: list[str]) -> dict[str, Any]:
    """Run the introspection in ``python`` (one that imports uhd): problems per use, and which paths exist."""
    done = subprocess.run([python, "-c", _INTROSPECT], input=json.dumps({"uses": uses, "paths": paths}),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def uhd_python() -> str:
    python = _uhd_python()
    if python is None:
        pytest.skip("no Python here imports the UHD API (Debian: apt-get install python3-uhd, for /usr/bin/python3)")
    return python


@pytest.fixture(scope="module")
def real_uhd(uhd_python) -> dict[str, Any]:
    return introspect(uhd_python, backend_uses(), fake_surface())


def test_the_walk_finds_what_the_backend_uses():
    """The collector follows values through assignments and results: these uses are in radio/usrp.py today."""
    seen = {(json.dumps(u["symbol"]), u["attr"]) for u in backend_uses()}
    multi = json.dumps(("instance", ("path", "uhd.usrp.MultiUSRP")))
    rx_stream = json.dumps(("return", ("instance", ("path", "uhd.usrp.MultiUSRP")), "get_rx_stream"))
    rx_md = json.dumps(("instance", ("path", "uhd.types.RXMetadata")))
    for expected in [(multi, "set_rx_gain"), (multi, "get_rx_stream"), (rx_stream, "recv"), (rx_md, "error_code"),
                     (json.dumps(("path", "uhd.types.StreamMode")), "num_done"),
                     (json.dumps(("attr", ("instance", ("path", "uhd.types.RXMetadata")), "time_spec")),
                      "get_real_secs")]:
        assert expected in seen, expected
    assert len(seen) >= 40


def test_every_uhd_name_the_backend_uses_exists_with_a_fitting_signature(real_uhd):
    problems = [f"radio/usrp.py:{u['lines'][0]} {u['attr']}: {p}" for u in real_uhd["uses"] for p in u["problems"]]
    assert not problems, "\n".join(problems)
    assert len(real_uhd["uses"]) >= 40


def test_the_fake_offers_nothing_the_real_uhd_lacks(real_uhd):
    missing = sorted(p for p, ok in real_uhd["exists"].items() if not ok)
    assert not missing, f"tests/fakes/fake_uhd.py offers names the real uhd lacks: {missing}"


def test_the_check_catches_a_wrong_name_and_a_wrong_call(uhd_python):
    multi = ("instance", ("path", "uhd.usrp.MultiUSRP"))
    uses = [{"symbol": multi, "attr": "set_rx_gainz", "calls": [{"positional": 2, "keywords": []}], "lines": [1]},
            {"symbol": multi, "attr": "set_rx_gain", "calls": [{"positional": 4, "keywords": []}], "lines": [2]},
            {"symbol": multi, "attr": "set_rx_gain", "calls": [{"positional": 1, "keywords": ["chan"]}], "lines": [3]},
            {"symbol": ("path", "uhd.types"), "attr": "StreamCmd", "calls": [], "lines": [4]}]
    found = introspect(uhd_python, uses, ["uhd.types.StreamCMD.stream_mode", "uhd.types.StreamCMD.num_samps"])
    assert [bool(u["problems"]) for u in found["uses"]] == [True, True, False, True]
    assert found["exists"] == {"uhd.types.StreamCMD.stream_mode": False, "uhd.types.StreamCMD.num_samps": True}
