"""Derive the ComfyUI simulator's ``/object_info`` from ComfyUI's own source, without importing it.

    python -m simulators.contracts.comfyui.extract PATH [--repo OWNER/NAME] [--out FILE]

``PATH`` is a ComfyUI checkout, or a git directory of one (then its ``HEAD`` is read). Nothing
of ComfyUI is imported or executed: its server needs torch and a GPU stack. Instead the
functions that build an ``/object_info`` entry are *read*: their syntax trees are evaluated by
a small interpreter below, which knows Python's semantics but nothing of ComfyUI's, so the
answer is what ComfyUI's own code says:

- ``server.py`` ``node_info`` (the route's builder; V1 nodes through their ``INPUT_TYPES``),
- for nodes of the "V3" schema (``comfy_api/latest/_io.py``): ``GET_NODE_INFO_V1`` ->
  ``FINALIZE_SCHEMA`` (the node's ``define_schema`` and ``Schema.finalize``) ->
  ``Schema.get_v1_info`` -> each input's ``as_dict`` / ``get_io_type``, as the server does.

Two things are what ComfyUI does at load time rather than in those functions, and are done here
the same way: ``nodes.NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS`` gain the nodes of
the ``comfy_extras`` files that ``init_builtin_extra_nodes`` lists (``load_custom_node``), whose
classes get ``RELATIVE_PYTHON_MODULE = "comfy_extras.<file>"``; and the ``comfytype``
decorator binds ``io_type`` to a type and makes it the ``Parent`` of its ``Input``/``Output``.

A models folder is read by ``folder_paths.get_filename_list(folder)``: here it is empty, as on a
server with no models, and the extract records which inputs list which folder
(``_folder_inputs``) so the simulator can fill them with its own models. Anything the
interpreter does not know stops the script with the file and line: teach it, never guess.

The extract holds exactly the node classes of the bundled workflows plus the ones the
simulator treats specially (:data:`SIMULATOR_NODES`), with a ``_source`` header: repository,
commit, commit date, ComfyUI version, date extracted.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import datetime as dt
import json
import logging
import subprocess
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[3]
WORKFLOWS = ROOT / "shared" / "adapters" / "vendors" / "workflows"
OUT = Path(__file__).resolve().parent / "object_info.json"
# Nodes the simulator understands besides those of the bundled workflows (simulators/comfyui/:
# samplers, text encoders, latent sources and outputs it reads, and the scaling chain).
SIMULATOR_NODES = (
    "KSamplerAdvanced",
    "CLIPTextEncodeSDXL",
    "EmptySD3LatentImage",
    "ImageScaleBy",
    "PreviewImage",
)


class ExtractError(Exception):
    """The source holds something this script cannot read."""


class Missing(ExtractError):
    """An attribute or name that does not exist (what ``hasattr`` asks about)."""


# --------------------------------------------------------------------------- reading the source


class Source:
    """Files of a ComfyUI checkout or of a git directory's HEAD."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.worktree = (path / "nodes.py").is_file()
        if not self.worktree and not (path / "HEAD").is_file():
            raise ExtractError(f"{path}: neither a ComfyUI checkout nor a git directory")

    def _git(self, *args: str) -> str:
        where = ["-C", str(self.path)] if self.worktree else [f"--git-dir={self.path}"]
        return subprocess.run(
            ["git", *where, *args], check=True, capture_output=True, text=True
        ).stdout

    def read(self, rel: str) -> str | None:
        if self.worktree:
            file = self.path / rel
            return file.read_text(encoding="utf-8") if file.is_file() else None
        try:
            return self._git("show", f"HEAD:{rel}")
        except subprocess.CalledProcessError:
            return None

    def is_package_dir(self, rel: str) -> bool:
        """A folder (a namespace package when it has no ``__init__.py``)."""
        if self.worktree:
            return (self.path / rel).is_dir()
        try:
            return self._git("cat-file", "-t", f"HEAD:{rel}").strip() == "tree"
        except subprocess.CalledProcessError:
            return False

    def commit(self) -> tuple[str, str]:
        """The commit read and its date (ISO 8601)."""
        sha, date = self._git("log", "-1", "--format=%H %cI").split()
        return sha, date


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class FolderList:
    """``folder_paths.get_filename_list(folder)``: the files of a models folder."""

    folder: str


@dataclass(frozen=True)
class External:
    """A name from outside the checkout (the standard library, torch...): known only by name."""

    name: str


@dataclass(frozen=True)
class ModuleRef:
    name: str


@dataclass(frozen=True)
class EnumMember:
    name: str
    value: Any


@dataclass(eq=False)
class ClassRef:
    module: Module
    node: ast.ClassDef
    owner: ClassRef | None = None  # the class it was reached through (a comfytype's Parent)

    def same(self, other: object) -> bool:
        return isinstance(other, ClassRef) and other.node is self.node

    def __repr__(self) -> str:
        return f"<class {self.module.name}.{self.node.name}>"


@dataclass(eq=False)
class Instance:
    cls: ClassRef
    attrs: dict[str, Any] = field(default_factory=dict)
    fields: list[str] | None = None  # a dataclass's fields, in order


@dataclass(eq=False)
class Function:
    module: Module
    node: ast.FunctionDef | ast.AsyncFunctionDef
    owner: ClassRef | None = None  # the class whose body defines it (for super())
    enclosing: dict[str, Any] | None = None  # locals of the function it is nested in


@dataclass(eq=False)
class Bound:
    func: Function
    first: Any  # self, or the class of a classmethod


@dataclass(eq=False)
class Super:
    owner: ClassRef
    first: Any


class _Return(Exception):
    def __init__(self, value: Any) -> None:
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


def _decorators(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> set[str]:
    names = set()
    for dec in node.decorator_list:
        target = dec.func if isinstance(dec, ast.Call) else dec
        if isinstance(target, ast.Name):
            names.add(target.id)
        elif isinstance(target, ast.Attribute):
            names.add(target.attr)
    return names


class Module:
    """One source file: its top-level bindings, read lazily."""

    def __init__(self, world: World, name: str, tree: ast.Module, package: bool) -> None:
        self.world = world
        self.name = name
        self.package = name if package else name.rpartition(".")[0]
        self.bindings: dict[str, ast.AST] = {}
        self.overrides: dict[str, Any] = {}
        self._cache: dict[str, Any] = {}
        self._bind(tree.body)

    def _bind(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            if isinstance(stmt, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                self.bindings[stmt.name] = stmt
            elif isinstance(stmt, ast.Assign):
                for target in stmt.targets:
                    if isinstance(target, ast.Name):
                        self.bindings[target.id] = stmt.value
            elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
                if isinstance(stmt.target, ast.Name):
                    self.bindings[stmt.target.id] = stmt.value
            elif isinstance(stmt, ast.Import | ast.ImportFrom):
                for alias in stmt.names:
                    bound = alias.asname or alias.name.split(".")[0]
                    self.bindings[bound] = stmt
            elif isinstance(stmt, ast.Try):
                # Optional imports: the body is what a complete installation binds.
                self._bind(stmt.body)
            elif isinstance(stmt, ast.If):
                self._bind(stmt.body)

    def absolute(self, stmt: ast.ImportFrom) -> str:
        if not stmt.level:
            return stmt.module or ""
        base = self.package.split(".") if self.package else []
        base = base[: len(base) - (stmt.level - 1)]
        return ".".join([*base, *([stmt.module] if stmt.module else [])])

    def get(self, name: str) -> Any:
        if name in self.overrides:
            return self.overrides[name]
        if name in self._cache:
            return self._cache[name]
        node = self.bindings.get(name)
        if node is None:
            raise Missing(f"{self.name}: no name {name!r}")
        value = self._resolve(name, node)
        self._cache[name] = value
        return value

    def _resolve(self, name: str, node: ast.AST) -> Any:
        world = self.world
        if isinstance(node, ast.ClassDef):
            return ClassRef(self, node)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            return Function(self, node)
        if isinstance(node, ast.Import):
            found = self._imported(name, node)
            if found is not None:
                return found
        if isinstance(node, ast.ImportFrom):
            found = self._imported_from(name, node)
            if found is not None:
                return found
        if isinstance(node, ast.expr):
            return world.interp.eval(node, Frame(self, {}))
        raise ExtractError(f"{self.name}: cannot read the binding of {name!r}")

    def _imported(self, name: str, node: ast.Import) -> Any:
        """What ``import a.b [as name]`` binds to ``name``, or None."""
        for alias in node.names:
            if alias.asname == name:
                return self.world.module_ref(alias.name)
            if alias.asname is None and alias.name.split(".")[0] == name:
                return self.world.module_ref(name)
        return None

    def _imported_from(self, name: str, node: ast.ImportFrom) -> Any:
        """What ``from m import x [as name]`` binds to ``name``, or None."""
        source = self.absolute(node)
        for alias in node.names:
            if (alias.asname or alias.name) != name:
                continue
            if self.world.module(f"{source}.{alias.name}") is not None:
                return ModuleRef(f"{source}.{alias.name}")
            module = self.world.module(source)
            if module is None:
                return External(f"{source}.{alias.name}")
            return module.get(alias.name)
        return None

    def function(self, name: str, *, within: str | None = None) -> Function:
        """A top-level function, or one nested anywhere inside top-level ``within``."""
        scope = self.bindings.get(within or name)
        if within is None and isinstance(scope, ast.FunctionDef | ast.AsyncFunctionDef):
            return Function(self, scope)
        for node in ast.walk(scope) if scope is not None else ():
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name:
                return Function(self, node, enclosing={})
        raise ExtractError(f"{self.name}: no function {name!r}")


class World:
    """Every module of the checkout that is read, by dotted name."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self._modules: dict[str, Module | None] = {}
        self.hooks: dict[tuple[str, str], Callable[..., Any]] = {}
        self.interp = Interpreter(self)

    def module(self, name: str) -> Module | None:
        if name not in self._modules:
            base = name.replace(".", "/")
            found: Module | None = None
            for rel, package in ((f"{base}.py", False), (f"{base}/__init__.py", True)):
                text = self.source.read(rel)
                if text is not None:
                    found = Module(self, name, ast.parse(text, filename=rel), package)
                    break
            self._modules[name] = found
        return self._modules[name]

    def module_ref(self, name: str) -> ModuleRef | External:
        if self.module(name) is not None or self.source.is_package_dir(name.replace(".", "/")):
            return ModuleRef(name)
        return External(name)


# --------------------------------------------------------------------------- the interpreter


@dataclass
class Frame:
    module: Module
    locals: dict[str, Any]
    func: Function | None = None

    def where(self, node: ast.AST) -> str:
        return f"{self.module.name.replace('.', '/')}.py:{getattr(node, 'lineno', '?')}"


def _python_methods(value: Any, name: str) -> Any:
    """Methods of plain values the read code calls (``d.items()``, ``l.append(x)``...)."""
    allowed = {
        dict: {"items", "keys", "values", "get", "pop", "setdefault", "copy", "update"},
        list: {"append", "copy", "extend", "index"},
        tuple: {"index"},
        str: {"split", "strip", "lower", "upper", "startswith", "endswith", "join", "format"},
    }
    for kind, names in allowed.items():
        if isinstance(value, kind) and name in names:
            return getattr(value, name)
    raise Missing(f"{type(value).__name__} has no readable attribute {name!r}")


class Interpreter:
    """Evaluates the subset of Python that ComfyUI's node-info functions are written in."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.classes = ClassModel(self)
        self.builtins = Builtins(self).table()

    # ---- attributes

    def getattr(self, obj: Any, name: str, node: ast.AST | None = None) -> Any:
        if isinstance(obj, ModuleRef):
            return self._module_attr(obj, name)
        if isinstance(obj, External):
            return External(f"{obj.name}.{name}")
        if isinstance(obj, ClassRef):
            value = self.classes.class_attr(obj, name)
            return self._bind_class(obj, value)
        if isinstance(obj, Instance):
            return self._instance_attr(obj, name)
        if isinstance(obj, Super):
            return self._super_attr(obj, name)
        if isinstance(obj, EnumMember):
            if name == "name":
                return obj.name
            if name == "value":
                return obj.value
            raise Missing(f"enum member {obj.name} has no attribute {name!r}")
        return _python_methods(obj, name)

    def _module_attr(self, obj: ModuleRef, name: str) -> Any:
        sub = f"{obj.name}.{name}"
        if self.world.module(sub) is not None:
            return ModuleRef(sub)
        module = self.world.module(obj.name)
        if module is None:
            raise Missing(f"namespace package {obj.name} has no module {name!r}")
        return module.get(name)

    def _instance_attr(self, obj: Instance, name: str) -> Any:
        if name in obj.attrs:
            return obj.attrs[name]
        if name == "Parent" and obj.cls.owner is not None:
            return obj.cls.owner
        value = self.classes.class_attr(obj.cls, name)
        if not isinstance(value, Function):
            return value
        decs = _decorators(value.node)
        if "property" in decs:
            return self.call(value, [obj], {})
        if "classmethod" in decs:
            return Bound(value, obj.cls)
        if "staticmethod" in decs:
            return value
        return Bound(value, obj)

    def _super_attr(self, obj: Super, name: str) -> Any:
        start = obj.first.cls if isinstance(obj.first, Instance) else obj.first
        value = self.classes.class_attr(start, name, start_after=obj.owner)
        if not isinstance(value, Function):
            return value
        decs = _decorators(value.node)
        if "property" in decs:
            return self.call(value, [obj.first], {})
        if "classmethod" in decs and isinstance(obj.first, Instance):
            return Bound(value, obj.first.cls)
        return Bound(value, obj.first)

    def _bind_class(self, cls: ClassRef, value: Any) -> Any:
        if isinstance(value, ClassRef):
            # A nested class reached through a class: the comfytype decorator's Parent.
            return ClassRef(value.module, value.node, owner=cls)
        if isinstance(value, Function):
            decs = _decorators(value.node)
            if "classmethod" in decs:
                return Bound(value, cls)
            if "classproperty" in decs:
                return self.call(value, [cls], {})
        return value

    # ---- calls

    def call(self, fn: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if isinstance(fn, Bound):
            return self.call(fn.func, [fn.first, *args], kwargs)
        if isinstance(fn, Function):
            hook = self.world.hooks.get((fn.module.name, fn.node.name))
            if hook is not None:
                return hook(*args, **kwargs)
            return self._run(fn, args, kwargs)
        if isinstance(fn, ClassRef):
            return self._instantiate(fn, args, kwargs)
        if isinstance(fn, External):
            hook = self.world.hooks.get(("", fn.name))
            if hook is not None:
                return hook(*args, **kwargs)
            raise ExtractError(f"cannot call {fn.name} (outside the checkout)")
        if callable(fn):  # a builtin, or a method of a plain value
            return fn(*args, **kwargs)
        raise ExtractError(f"cannot call {fn!r}")

    def _instantiate(self, cls: ClassRef, args: list[Any], kwargs: dict[str, Any]) -> Any:
        chain = self.classes.mro(cls)
        if "dataclass" in _decorators(cls.node):
            inst = Instance(cls, fields=[])
            fields = self.classes.dataclass_fields(cls)
            for i, (name, default, owner) in enumerate(fields):
                if i < len(args):
                    value = args[i]
                elif name in kwargs:
                    value = kwargs.pop(name)
                elif default is not None:
                    value = self.eval(default, Frame(owner.module, {}))
                else:
                    raise ExtractError(f"{cls!r}: field {name} not given")
                inst.attrs[name] = value
                assert inst.fields is not None
                inst.fields.append(name)
            if kwargs or len(args) > len(fields):
                raise ExtractError(f"{cls!r}: unexpected arguments {sorted(kwargs)}")
            return inst
        if any(isinstance(c, External) and c.name in {"str", "builtins.str"} for c in chain):
            return str(*args)
        inst = Instance(cls)
        try:
            init = self.classes.class_attr(cls, "__init__")
        except Missing:
            if args or kwargs:
                raise ExtractError(f"{cls!r} takes no arguments") from None
            return inst
        self.call(Bound(init, inst), args, kwargs)
        return inst

    def _run(self, fn: Function, args: list[Any], kwargs: dict[str, Any]) -> Any:
        frame = Frame(fn.module, dict(fn.enclosing or {}), fn)
        self._bind_positional(fn, frame, args, kwargs)
        self._bind_keywords(fn, frame, kwargs)
        try:
            self.exec_block(fn.node.body, frame)
        except _Return as ret:
            return ret.value
        return None

    def _bind_positional(
        self, fn: Function, frame: Frame, args: list[Any], kwargs: dict[str, Any]
    ) -> None:
        """The positional parameters (and ``*args``) from the call, its keywords or defaults."""
        spec = fn.node.args
        positional = [*spec.posonlyargs, *spec.args]
        defaults = [None] * (len(positional) - len(spec.defaults)) + list(spec.defaults)
        for i, (param, default) in enumerate(zip(positional, defaults, strict=True)):
            if i < len(args):
                frame.locals[param.arg] = args[i]
            elif param.arg in kwargs:
                frame.locals[param.arg] = kwargs.pop(param.arg)
            elif default is not None:
                frame.locals[param.arg] = self.eval(default, Frame(fn.module, {}))
            else:
                raise ExtractError(f"{frame.where(fn.node)}: {fn.node.name} needs {param.arg}")
        extra = args[len(positional) :]
        if extra and spec.vararg is None:
            raise ExtractError(f"{frame.where(fn.node)}: {fn.node.name}: too many arguments")
        if spec.vararg is not None:
            frame.locals[spec.vararg.arg] = tuple(extra)

    def _bind_keywords(self, fn: Function, frame: Frame, kwargs: dict[str, Any]) -> None:
        """The keyword-only parameters, then ``**kwargs`` (or a refusal of what is left)."""
        spec = fn.node.args
        for param, kw_default in zip(spec.kwonlyargs, spec.kw_defaults, strict=True):
            if param.arg in kwargs:
                frame.locals[param.arg] = kwargs.pop(param.arg)
            elif kw_default is not None:
                frame.locals[param.arg] = self.eval(kw_default, Frame(fn.module, {}))
            else:
                raise ExtractError(f"{frame.where(fn.node)}: {fn.node.name} needs {param.arg}")
        if spec.kwarg is not None:
            frame.locals[spec.kwarg.arg] = kwargs
        elif kwargs:
            raise ExtractError(
                f"{frame.where(fn.node)}: {fn.node.name}: unexpected {sorted(kwargs)}"
            )

    # ---- statements

    def exec_block(self, body: Iterable[ast.stmt], frame: Frame) -> None:
        for stmt in body:
            self.exec(stmt, frame)

    def exec(self, stmt: ast.stmt, frame: Frame) -> None:
        if isinstance(stmt, ast.Expr):
            if not isinstance(stmt.value, ast.Constant):  # a docstring does nothing
                self.eval(stmt.value, frame)
        elif isinstance(stmt, ast.Pass):
            return
        elif isinstance(stmt, ast.Return):
            raise _Return(None if stmt.value is None else self.eval(stmt.value, frame))
        elif isinstance(stmt, ast.Assign | ast.AnnAssign):
            self._exec_assign(stmt, frame)
        elif isinstance(stmt, ast.If):
            self.exec_block(stmt.body if self.eval(stmt.test, frame) else stmt.orelse, frame)
        elif isinstance(stmt, ast.For):
            self._exec_for(stmt, frame)
        elif isinstance(stmt, ast.Break):
            raise _Break
        elif isinstance(stmt, ast.Continue):
            raise _Continue
        elif isinstance(stmt, ast.Raise):
            raise ExtractError(f"{frame.where(stmt)}: the code read raises {ast.unparse(stmt)}")
        else:
            raise ExtractError(f"{frame.where(stmt)}: cannot run {type(stmt).__name__}")

    def _exec_assign(self, stmt: ast.Assign | ast.AnnAssign, frame: Frame) -> None:
        if isinstance(stmt, ast.AnnAssign):
            if stmt.value is not None:
                self.assign(stmt.target, self.eval(stmt.value, frame), frame)
            return
        value = self.eval(stmt.value, frame)
        for target in stmt.targets:
            self.assign(target, value, frame)

    def _exec_for(self, stmt: ast.For, frame: Frame) -> None:
        for item in self.eval(stmt.iter, frame):
            self.assign(stmt.target, item, frame)
            try:
                self.exec_block(stmt.body, frame)
            except _Break:
                break
            except _Continue:
                continue
        else:
            self.exec_block(stmt.orelse, frame)

    def assign(self, target: ast.expr, value: Any, frame: Frame) -> None:
        if isinstance(target, ast.Name):
            frame.locals[target.id] = value
        elif isinstance(target, ast.Tuple | ast.List):
            items = list(value)
            if len(items) != len(target.elts):
                raise ExtractError(f"{frame.where(target)}: cannot unpack {len(items)} values")
            for elt, item in zip(target.elts, items, strict=True):
                self.assign(elt, item, frame)
        elif isinstance(target, ast.Attribute):
            obj = self.eval(target.value, frame)
            if isinstance(obj, Instance):
                obj.attrs[target.attr] = value
            elif isinstance(obj, ClassRef):
                self.classes.overrides.setdefault(id(obj.node), {})[target.attr] = value
            else:
                raise ExtractError(f"{frame.where(target)}: cannot set {ast.unparse(target)}")
        elif isinstance(target, ast.Subscript):
            obj = self.eval(target.value, frame)
            obj[self.eval(target.slice, frame)] = value
        else:
            raise ExtractError(f"{frame.where(target)}: cannot assign to {ast.unparse(target)}")

    # ---- expressions

    def lookup(self, name: str, frame: Frame, node: ast.AST) -> Any:
        if name in frame.locals:
            return frame.locals[name]
        try:
            return frame.module.get(name)
        except Missing:
            pass
        if name == "super":
            return self._super(frame, node)
        if name in self.builtins:
            return self.builtins[name]
        if hasattr(builtins, name):
            return External(name)
        raise ExtractError(f"{frame.where(node)}: name {name!r} is not defined")

    def _super(self, frame: Frame, node: ast.AST) -> Callable[[], Super]:
        func = frame.func
        if func is None or func.owner is None:
            raise ExtractError(f"{frame.where(node)}: super() outside a method")
        first = frame.locals[func.node.args.args[0].arg]
        owner = func.owner
        return lambda: Super(owner, first)

    def eval(self, node: ast.expr, frame: Frame) -> Any:
        evaluate = _EVALUATORS.get(type(node))
        if evaluate is None:
            raise ExtractError(f"{frame.where(node)}: cannot evaluate {ast.unparse(node)}")
        return evaluate(self, node, frame)

    def _eval_dict(self, node: ast.Dict, frame: Frame) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:
                out.update(self.eval(value, frame))
            else:
                out[self.eval(key, frame)] = self.eval(value, frame)
        return out

    def _eval_boolop(self, node: ast.BoolOp, frame: Frame) -> Any:
        result: Any = None
        for value_node in node.values:
            result = self.eval(value_node, frame)
            if isinstance(node.op, ast.And) and not result:
                return result
            if isinstance(node.op, ast.Or) and result:
                return result
        return result

    def _eval_unary(self, node: ast.UnaryOp, frame: Frame) -> Any:
        operand = self.eval(node.operand, frame)
        if isinstance(node.op, ast.Not):
            return not operand
        if isinstance(node.op, ast.USub):
            return -operand
        raise ExtractError(f"{frame.where(node)}: cannot evaluate {ast.unparse(node)}")

    def _eval_compare(self, node: ast.Compare, frame: Frame) -> bool:
        left = self.eval(node.left, frame)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.eval(right_node, frame)
            if not _COMPARE[type(op)](left, right):
                return False
            left = right
        return True

    def _eval_fstring(self, node: ast.JoinedStr, frame: Frame) -> str:
        parts = []
        for part in node.values:
            if isinstance(part, ast.FormattedValue) and part.format_spec is None:
                parts.append(str(self.eval(part.value, frame)))
            elif isinstance(part, ast.Constant):
                parts.append(str(part.value))
            else:
                raise ExtractError(f"{frame.where(node)}: cannot format {ast.unparse(node)}")
        return "".join(parts)

    def _elements(self, elts: list[ast.expr], frame: Frame) -> Iterator[Any]:
        for elt in elts:
            if isinstance(elt, ast.Starred):
                yield from self.eval(elt.value, frame)
            else:
                yield self.eval(elt, frame)

    def _eval_call(self, node: ast.Call, frame: Frame) -> Any:
        fn = self.eval(node.func, frame)
        if fn is list and len(node.args) == 1 and isinstance(node.args[0], ast.Name):
            # list(SOME_DICT) of a module-level dict literal: its keys, without evaluating its
            # values (ComfyUI's scheduler table maps names to functions).
            bound = frame.module.bindings.get(node.args[0].id)
            if node.args[0].id not in frame.locals and isinstance(bound, ast.Dict):
                return [self.eval(k, frame) for k in bound.keys if k is not None]
        args = list(self._elements(node.args, frame))
        kwargs: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                kwargs.update(self.eval(kw.value, frame))
            else:
                kwargs[kw.arg] = self.eval(kw.value, frame)
        try:
            return self.call(fn, args, kwargs)
        except ExtractError as exc:
            if ".py:" in str(exc):
                raise
            raise type(exc)(f"{frame.where(node)}: {exc}") from exc  # where it was called
        except (_Return, _Break, _Continue):
            raise
        except Exception as exc:
            raise ExtractError(f"{frame.where(node)}: {ast.unparse(node)}: {exc!r}") from exc

    def _comprehension(
        self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp, frame: Frame
    ) -> Any:
        inner = Frame(frame.module, dict(frame.locals), frame.func)
        results: list[Any] = []

        def walk(level: int) -> None:
            if level == len(node.generators):
                if isinstance(node, ast.DictComp):
                    results.append((self.eval(node.key, inner), self.eval(node.value, inner)))
                else:
                    results.append(self.eval(node.elt, inner))
                return
            gen = node.generators[level]
            for item in self.eval(gen.iter, inner):
                self.assign(gen.target, item, inner)
                if all(self.eval(cond, inner) for cond in gen.ifs):
                    walk(level + 1)

        walk(0)
        if isinstance(node, ast.DictComp):
            return dict(results)
        if isinstance(node, ast.SetComp):
            return set(results)
        return results


class ClassModel:
    """Classes of the code read: their MRO, attributes (with run-time overrides), enums and
    dataclass fields."""

    def __init__(self, interp: Interpreter) -> None:
        self.interp = interp
        # Class attributes set at run time (load_custom_node's RELATIVE_PYTHON_MODULE).
        self.overrides: dict[int, dict[str, Any]] = {}

    def mro(self, cls: ClassRef) -> list[ClassRef | External]:
        order: list[ClassRef | External] = [cls]
        for base_node in cls.node.bases:
            base = self.interp.eval(base_node, Frame(cls.module, {}))
            chain: list[ClassRef | External]
            if isinstance(base, ClassRef):
                chain = self.mro(base)
            elif isinstance(base, External):
                chain = [base]
            elif isinstance(base, type):
                chain = [External(base.__name__)]
            else:
                raise ExtractError(f"{cls!r}: base {ast.unparse(base_node)} is not a class")
            for item in chain:
                if not any(
                    (isinstance(item, ClassRef) and item.same(o)) or item == o for o in order
                ):
                    order.append(item)
        return order

    def is_enum(self, cls: ClassRef) -> bool:
        return any(
            isinstance(c, External) and c.name.rpartition(".")[2] in {"Enum", "StrEnum", "IntEnum"}
            for c in self.mro(cls)
        )

    def class_attr(self, cls: ClassRef, name: str, start_after: ClassRef | None = None) -> Any:
        chain = self.mro(cls)
        if start_after is not None:
            index = next(i for i, c in enumerate(chain) if start_after.same(c))
            chain = chain[index + 1 :]
        for owner in chain:
            if not isinstance(owner, ClassRef):
                continue
            overrides = self.overrides.get(id(owner.node), {})
            if name in overrides:
                return overrides[name]
            if name == "io_type":
                bound = self._comfytype_io_type(owner)
                if bound is not None:
                    return bound
            found = self._in_body(owner, name)
            if found is not _NOTHING:
                return found
        raise Missing(f"{cls!r} has no attribute {name!r}")

    def _comfytype_io_type(self, cls: ClassRef) -> Any:
        for dec in cls.node.decorator_list:
            if isinstance(dec, ast.Call) and _decorators(cls.node) & {"comfytype"}:
                for kw in dec.keywords:
                    if kw.arg == "io_type":
                        return self.interp.eval(kw.value, Frame(cls.module, {}))
        return None

    def _in_body(self, cls: ClassRef, name: str) -> Any:
        found: Any = _NOTHING
        for stmt in cls.node.body:
            if isinstance(stmt, ast.ClassDef) and stmt.name == name:
                found = ClassRef(cls.module, stmt)
            elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and stmt.name == name:
                found = Function(cls.module, stmt, owner=cls)
            elif isinstance(stmt, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == name for t in stmt.targets
            ):
                found = self.interp.eval(stmt.value, Frame(cls.module, {}))
                if self.is_enum(cls):
                    found = EnumMember(name, found)
            elif (
                isinstance(stmt, ast.AnnAssign)
                and stmt.value is not None
                and isinstance(stmt.target, ast.Name)
                and stmt.target.id == name
            ):
                found = self.interp.eval(stmt.value, Frame(cls.module, {}))
        return found

    def dataclass_fields(self, cls: ClassRef) -> list[tuple[str, ast.expr | None, ClassRef]]:
        fields: dict[str, tuple[str, ast.expr | None, ClassRef]] = {}
        for owner in reversed(self.mro(cls)):
            if not isinstance(owner, ClassRef) or "dataclass" not in _decorators(owner.node):
                continue
            for stmt in owner.node.body:
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                    if "ClassVar" in ast.unparse(stmt.annotation):
                        continue
                    fields[stmt.target.id] = (stmt.target.id, stmt.value, owner)
        return list(fields.values())


class Builtins:
    """The builtins that must know the interpreter's classes (``isinstance`` of a class read
    from the source, ``getattr`` through the interpreter), and the plain ones it allows."""

    def __init__(self, interp: Interpreter) -> None:
        self.interp = interp

    def table(self) -> dict[str, Any]:
        return {
            "isinstance": self._isinstance,
            "issubclass": self._issubclass,
            "hasattr": self._hasattr,
            "getattr": self._getattr_builtin,
            "len": len,
            "list": list,
            "dict": dict,
            "tuple": tuple,
            "set": set,
            "str": str,
            "int": int,
            "float": float,
            "bool": bool,
            "enumerate": enumerate,
            "range": range,
            "sorted": sorted,
            "zip": zip,
            "any": any,
            "all": all,
            "min": min,
            "max": max,
            "type": type,
        }

    def class_matches(self, value: Any, kind: Any) -> bool:
        if isinstance(kind, tuple):
            return any(self.class_matches(value, k) for k in kind)
        if kind is type:
            return isinstance(value, ClassRef | type)
        if isinstance(kind, ClassRef):
            return isinstance(value, Instance) and any(
                kind.same(c) for c in self.interp.classes.mro(value.cls)
            )
        if isinstance(kind, External):
            if kind.name.rpartition(".")[2] in {"Enum", "StrEnum", "IntEnum"}:
                return isinstance(value, EnumMember)
            return False
        if isinstance(kind, type):
            return not isinstance(value, ClassRef | Instance) and isinstance(value, kind)
        raise ExtractError(f"isinstance against {kind!r}")

    def _isinstance(self, value: Any, kind: Any) -> bool:
        return self.class_matches(value, kind)

    def _issubclass(self, cls: Any, kind: Any) -> bool:
        if not isinstance(cls, ClassRef):
            raise ExtractError(f"issubclass of {cls!r}")
        kinds = kind if isinstance(kind, tuple) else (kind,)
        return any(
            any(
                (isinstance(k, ClassRef) and k.same(c)) or k == c
                for c in self.interp.classes.mro(cls)
            )
            for k in kinds
        )

    def _getattr_builtin(self, obj: Any, name: str, *default: Any) -> Any:
        try:
            return self.interp.getattr(obj, name)
        except Missing:
            if default:
                return default[0]
            raise

    def _hasattr(self, obj: Any, name: str) -> bool:
        try:
            self.interp.getattr(obj, name)
        except Missing:
            return False
        return True


_NOTHING = object()
_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.BitOr: lambda a, b: a | b,
    ast.Mod: lambda a, b: a % b,
    ast.FloorDiv: lambda a, b: a // b,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: bool(a == b),
    ast.NotEq: lambda a, b: bool(a != b),
    ast.Is: lambda a, b: a is b,
    ast.IsNot: lambda a, b: a is not b,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Lt: lambda a, b: bool(a < b),
    ast.LtE: lambda a, b: bool(a <= b),
    ast.Gt: lambda a, b: bool(a > b),
    ast.GtE: lambda a, b: bool(a >= b),
}


# --------------------------------------------------------------------------- ComfyUI at load time


# How the interpreter evaluates each kind of expression it reads (anything else is refused).
_EVALUATORS: dict[type[ast.expr], Callable[[Interpreter, Any, Frame], Any]] = {
    ast.Constant: lambda _i, node, _f: node.value,
    ast.Name: lambda i, node, f: i.lookup(node.id, f, node),
    ast.Attribute: lambda i, node, f: i.getattr(i.eval(node.value, f), node.attr, node),
    ast.Call: lambda i, node, f: i._eval_call(node, f),
    ast.Tuple: lambda i, node, f: tuple(i._elements(node.elts, f)),
    ast.List: lambda i, node, f: list(i._elements(node.elts, f)),
    ast.Set: lambda i, node, f: set(i._elements(node.elts, f)),
    ast.Dict: lambda i, node, f: i._eval_dict(node, f),
    ast.IfExp: lambda i, node, f: i.eval(node.body if i.eval(node.test, f) else node.orelse, f),
    ast.BoolOp: lambda i, node, f: i._eval_boolop(node, f),
    ast.UnaryOp: lambda i, node, f: i._eval_unary(node, f),
    ast.BinOp: lambda i, node, f: _BINOPS[type(node.op)](
        i.eval(node.left, f), i.eval(node.right, f)
    ),
    ast.Compare: lambda i, node, f: i._eval_compare(node, f),
    ast.Subscript: lambda i, node, f: i.eval(node.value, f)[i.eval(node.slice, f)],
    ast.JoinedStr: lambda i, node, f: i._eval_fstring(node, f),
    ast.ListComp: lambda i, node, f: i._comprehension(node, f),
    ast.SetComp: lambda i, node, f: i._comprehension(node, f),
    ast.GeneratorExp: lambda i, node, f: i._comprehension(node, f),
    ast.DictComp: lambda i, node, f: i._comprehension(node, f),
}


def _asdict(value: Any) -> Any:
    """``dataclasses.asdict``: a dataclass as a dict of its fields in order, recursively."""
    if isinstance(value, Instance) and value.fields is not None:
        return {name: _asdict(value.attrs[name]) for name in value.fields}
    if isinstance(value, list | tuple):
        return type(value)(_asdict(v) for v in value)
    if isinstance(value, dict):
        return {k: _asdict(v) for k, v in value.items()}
    return value


def _extras_files(nodes: Module) -> list[str]:
    """The ``comfy_extras`` files ``init_builtin_extra_nodes`` loads, in its order."""
    func = nodes.function("init_builtin_extra_nodes")
    for stmt in ast.walk(func.node):
        if (
            isinstance(stmt, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "extras_files" for t in stmt.targets)
            and isinstance(stmt.value, ast.List)
        ):
            return [str(ast.literal_eval(e)) for e in stmt.value.elts]
    raise ExtractError("nodes.py: init_builtin_extra_nodes lists no extras_files")


def _v3_nodes(module: Module) -> dict[str, ClassRef]:
    """The V3 nodes a ``comfy_extras`` file registers: the classes its extension's
    ``get_node_list`` returns, by the ``node_id`` of their schema."""
    listed: set[str] = set()
    for top in module.bindings.values():
        for stmt in ast.walk(top) if isinstance(top, ast.ClassDef) else ():
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef) and (
                stmt.name == "get_node_list"
            ):
                listed |= {n.id for n in ast.walk(stmt) if isinstance(n, ast.Name)}
    found: dict[str, ClassRef] = {}
    for name in sorted(listed):
        cls = module.bindings.get(name)
        if not isinstance(cls, ast.ClassDef):
            continue
        for method in cls.body:
            if not (isinstance(method, ast.FunctionDef) and method.name == "define_schema"):
                continue
            for call in ast.walk(method):
                for kw in call.keywords if isinstance(call, ast.Call) else ():
                    if kw.arg == "node_id" and isinstance(kw.value, ast.Constant):
                        found[str(kw.value.value)] = ClassRef(module, cls)
    return found


def _core_nodes(nodes: Module, interp: Interpreter, want: set[str]) -> dict[str, ClassRef]:
    """The wanted classes of nodes.py's own ``NODE_CLASS_MAPPINGS`` literal."""
    mapping: dict[str, ClassRef] = {}
    core = nodes.bindings.get("NODE_CLASS_MAPPINGS")
    if not isinstance(core, ast.Dict):
        raise ExtractError("nodes.py: NODE_CLASS_MAPPINGS is not a dict literal")
    for key, value in zip(core.keys, core.values, strict=True):
        if key is not None and ast.literal_eval(key) in want:
            found = interp.eval(value, Frame(nodes, {}))
            if not isinstance(found, ClassRef):
                raise ExtractError(f"nodes.py: {ast.unparse(key)} is not a class")
            mapping[str(ast.literal_eval(key))] = found
    return mapping


def _extras_registered(
    module: Module, interp: Interpreter, display: dict[str, Any]
) -> dict[str, ClassRef]:
    """The classes an extras file registers (V1 mappings, or a V3 entry point); its display
    names are added to ``display``."""
    v1 = module.bindings.get("NODE_CLASS_MAPPINGS")
    if v1 is None:
        return _v3_nodes(module) if "comfy_entrypoint" in module.bindings else {}
    registered: dict[str, ClassRef] = {}
    for name, cls in interp.eval(v1, Frame(module, {})).items():  # type: ignore[arg-type]
        registered[name] = cls
    names = module.bindings.get("NODE_DISPLAY_NAME_MAPPINGS")
    if names is not None:
        display.update(interp.eval(names, Frame(module, {})))  # type: ignore[arg-type]
    return registered


def load_nodes(world: World, interp: Interpreter, wanted: Iterable[str]) -> dict[str, ClassRef]:
    """``nodes.NODE_CLASS_MAPPINGS`` after the built-in extras loaded, for ``wanted`` only."""
    nodes = world.module("nodes")
    if nodes is None:
        raise ExtractError("no nodes.py: is this a ComfyUI checkout?")
    want = set(wanted)
    mapping = _core_nodes(nodes, interp, want)
    display = dict(interp.eval(nodes.bindings["NODE_DISPLAY_NAME_MAPPINGS"], Frame(nodes, {})))  # type: ignore[arg-type]
    for file in _extras_files(nodes):
        stem = file.removesuffix(".py")
        module = world.module(f"comfy_extras.{stem}")
        if module is None:
            continue
        for name, cls in _extras_registered(module, interp, display).items():
            if name in want:
                mapping[name] = cls
                # What load_custom_node sets on every class of an extras file.
                interp.classes.overrides.setdefault(id(cls.node), {})["RELATIVE_PYTHON_MODULE"] = (
                    f"comfy_extras.{stem}"
                )
    nodes.overrides["NODE_CLASS_MAPPINGS"] = mapping
    nodes.overrides["NODE_DISPLAY_NAME_MAPPINGS"] = display
    missing = want - set(mapping)
    if missing:
        raise ExtractError(f"not core ComfyUI nodes: {', '.join(sorted(missing))}")
    return mapping


def install_hooks(world: World, interp: Interpreter) -> None:
    """What the read functions call that must not run here: reading a models folder, and
    ``GET_SCHEMA``'s class checks (the schema itself comes from ``FINALIZE_SCHEMA``)."""
    world.hooks[("folder_paths", "get_filename_list")] = lambda folder: FolderList(str(folder))
    world.hooks[("", "dataclasses.asdict")] = _asdict
    io = world.module("comfy_api.latest._io")
    if io is not None:

        def get_schema(cls: ClassRef) -> Any:
            return interp.call(interp.getattr(cls, "FINALIZE_SCHEMA"), [], {})

        world.hooks[("comfy_api.latest._io", "GET_SCHEMA")] = get_schema


def node_info(world: World, interp: Interpreter, name: str) -> Any:
    """What ``GET /object_info`` answers for ``name``: server.py's ``node_info``, run."""
    server = world.module("server")
    if server is None:
        raise ExtractError("no server.py: is this a ComfyUI checkout?")
    func = server.function("node_info", within="PromptServer")
    return interp.call(func, [name], {})


# --------------------------------------------------------------------------- output


def to_json(value: Any, where: str, folders: dict[str, str]) -> Any:
    """JSON as the server's ``json.dumps`` writes it; models folders become empty lists."""
    if isinstance(value, FolderList):
        folders[where] = value.folder
        return []
    if isinstance(value, EnumMember):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_json(v, f"{where}/{k}", folders) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v, f"{where}/{i}", folders) for i, v in enumerate(value)]
    if value is None or isinstance(value, bool | int | float | str):
        return str(value) if isinstance(value, str) else value
    raise ExtractError(f"{where}: {value!r} is not JSON")


def workflow_nodes(directory: Path = WORKFLOWS) -> list[str]:
    """Node classes of every bundled API-format workflow."""
    names: list[str] = []
    for file in sorted(directory.glob("*.json")):
        for node in json.loads(file.read_text(encoding="utf-8")).values():
            if node["class_type"] not in names:
                names.append(node["class_type"])
    return names


def extract(source: Source, wanted: list[str], repo: str) -> dict[str, Any]:
    world = World(source)
    interp = world.interp
    install_hooks(world, interp)
    mapping = load_nodes(world, interp, wanted)
    folders: dict[str, str] = {}
    info: dict[str, Any] = {}
    for name in mapping:  # the server's order: nodes.py, then the extras in load order
        info[name] = to_json(node_info(world, interp, name), name, folders)
    folder_inputs: dict[str, dict[str, str]] = {}
    for where, folder in folders.items():
        cls, _, section, name, *_rest = where.split("/")
        if section not in {"required", "optional"}:
            raise ExtractError(f"{where}: a models folder outside an input")
        folder_inputs.setdefault(cls, {})[name] = folder
    version_file = source.read("comfyui_version.py") or ""
    version = next(
        (
            str(ast.literal_eval(s.value))
            for s in ast.parse(version_file).body
            if isinstance(s, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__version__" for t in s.targets)
        ),
        None,
    )
    commit, date = source.commit()
    return {
        "_source": {
            "repository": f"https://github.com/{repo}",
            "commit": commit,
            "commit_date": date,
            "comfyui_version": version,
            "read": "server.py node_info; comfy_api/latest/_io.py GET_NODE_INFO_V1, "
            "Schema.get_v1_info, the inputs' as_dict; nodes.py and comfy_extras node classes",
            "extracted": dt.date.today().isoformat(),
            "by": "simulators/contracts/comfyui/extract.py",
        },
        "_folder_inputs": folder_inputs,
        "object_info": info,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("comfyui", type=Path, help="a ComfyUI checkout, or its git directory")
    parser.add_argument("--repo", default="Comfy-Org/ComfyUI", help="where it was cloned from")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    wanted = [*workflow_nodes(), *(n for n in SIMULATOR_NODES if n not in workflow_nodes())]
    data = extract(Source(args.comfyui), wanted, args.repo)
    args.out.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    logger.info(
        "extracted nodes=%d from=%s commit=%s out=%s",
        len(data["object_info"]), args.repo, data["_source"]["commit"], args.out,
    )  # fmt: skip


if __name__ == "__main__":
    main()
