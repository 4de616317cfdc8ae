"""Writes the async and pipeline command methods from the blocking ones.

``python -m kv_client._codegen`` rewrites ``_commands_async.py`` and
``_commands_pipeline.py``; tests/test_generated.py fails when either differs from
what this module would write now, so a method added to a ``_commands_*`` mixin
reaches every client in the same change.

Each generated method has the blocking method's name, parameters, overloads and
docstring, and a one-line body that records the blocking method's call
(``RECORDER.set(key, value, ...)``, see ``_recorder.py``) and sends it
(async) or queues it (pipeline). Only methods whose body is one ``self._call``
can be recorded; the others (``scan_iter``, a loop) are written by hand beside
the client that offers them, and listed in :data:`HAND_WRITTEN`.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from . import _commands

HAND_WRITTEN: Final = frozenset({"scan_iter"})
"""Methods that loop over several calls, so that no single call can be recorded."""

# Where each name a signature uses comes from; an unknown name stops the generator.
IMPORTS: Final = {
    "Any": "typing", "Literal": "typing", "overload": "typing", "Self": "typing", "TypeVar": "typing",
    "Mapping": "collections.abc", "Sequence": "collections.abc",
    "Key": "kv_protocol.values", "Value": "kv_protocol.values",
    "End": "._commands_base", "ExpireCondition": "._commands_base", "Where": "._commands_base",
    "Field": "._commands_hashes",
    "_NoMessage": "._commands", "_NO_MESSAGE": "._commands",
    "RECORDER": "._recorder", "cast": "typing",
}
BUILTINS: Final = frozenset({"None", "bool", "bytes", "dict", "float", "int", "list", "str", "tuple"})
LINE_LENGTH: Final = 110
SOURCE_DIR: Final = Path(__file__).parent


@dataclass(frozen=True)
class Method:
    """One blocking command method as the generator needs it."""

    name: str
    overloads: tuple[ast.FunctionDef, ...]
    implementation: ast.FunctionDef

    @property
    def docstring(self) -> str:
        return ast.get_docstring(self.implementation) or ""


def command_methods() -> list[Method]:
    """The recordable methods of ``Commands``, in the order Python resolves them."""
    found: dict[str, Method] = {}
    for cls in reversed(_commands.Commands.__mro__):
        if not cls.__module__.startswith("kv_client._commands"):
            continue
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        [class_def] = tree.body
        assert isinstance(class_def, ast.ClassDef)
        by_name: dict[str, list[ast.FunctionDef]] = {}
        for node in class_def.body:
            if isinstance(node, ast.FunctionDef) and not node.name.startswith("_"):
                by_name.setdefault(node.name, []).append(node)
        for name, defs in by_name.items():
            if name in HAND_WRITTEN:
                continue
            *overloads, implementation = defs
            _check_recordable(cls.__name__, implementation)
            found[name] = Method(name, tuple(overloads), implementation)
    return list(found.values())


def _check_recordable(owner: str, function: ast.FunctionDef) -> None:
    """Stop on what the generator cannot copy faithfully, rather than copy it wrong."""
    args = function.args
    if args.posonlyargs or args.kwarg is not None:
        raise SystemExit(f"{owner}.{function.name}: positional-only parameters and **kwargs are "
                         "not copied by kv_client._codegen; use plain or keyword-only parameters")
    docstring = ast.get_docstring(function) or ""
    if "\\" in docstring or '"""' in docstring:
        raise SystemExit(f"{owner}.{function.name}: a docstring with a backslash or triple quotes "
                         "cannot be copied as it is")
    body = function.body[1:] if ast.get_docstring(function) is not None else function.body
    calls = [node for node in ast.walk(function) if isinstance(node, ast.Call)
             and isinstance(node.func, ast.Attribute) and node.func.attr == "_call"]
    last = body[-1] if body else None
    if len(calls) != 1 or not isinstance(last, ast.Return) or len(body) > 2:
        raise SystemExit(f"{owner}.{function.name} is not one self._call(...): record it by "
                         "hand and add it to kv_client._codegen.HAND_WRITTEN")


def _parameters(function: ast.FunctionDef) -> list[str]:
    args = function.args
    rendered: list[str] = []
    positional = args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += args.defaults
    for arg, default in zip(positional, defaults, strict=True):
        rendered.append(_parameter(arg, default))
    if args.vararg is not None:
        rendered.append("*" + _parameter(args.vararg, None))
    elif args.kwonlyargs:
        rendered.append("*")
    for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        rendered.append(_parameter(arg, kw_default))
    return rendered


def _parameter(arg: ast.arg, default: ast.expr | None) -> str:
    text = arg.arg
    if arg.annotation is not None:
        text += ": " + ast.unparse(arg.annotation)
    if default is not None:
        text += (" = " if arg.annotation is not None else "=") + ast.unparse(default)
    return text


def _arguments(function: ast.FunctionDef) -> list[str]:
    """The call that passes every parameter on as it was given."""
    args = function.args
    passed = [arg.arg for arg in args.args[1:]]
    if args.vararg is not None:
        passed.append("*" + args.vararg.arg)
    passed += [f"{arg.arg}={arg.arg}" for arg in args.kwonlyargs]
    return passed


def _signature(prefix: str, name: str, parameters: list[str], returns: str) -> list[str]:
    """``def name(...) -> returns:``, wrapped."""
    return _wrapped(f"    {prefix}{name}(", parameters, f") -> {returns}:")


def _wrapped(head: str, parameters: list[str], tail: str) -> list[str]:
    """``head`` + parameters joined by commas + ``tail``, wrapped at commas to the line length."""
    one_line = head + ", ".join(parameters) + tail
    if len(one_line) <= LINE_LENGTH:
        return [one_line]
    indent = " " * len(head)
    lines, current = [], head
    for index, parameter in enumerate(parameters):
        piece = parameter + (", " if index < len(parameters) - 1 else tail)
        if len(current) + len(piece.rstrip()) > LINE_LENGTH and current.strip():
            lines.append(current.rstrip())
            current = indent
        current += piece
    lines.append(current)
    return lines


def _docstring(text: str) -> list[str]:
    return [f'        """{text}"""'] if "\n" not in text else [
        '        """' + text.replace("\n", "\n        ").replace("\n        \n", "\n\n") + '\n        """']


def _async_method(method: Method) -> Iterator[str]:
    for overload in method.overloads:
        yield "    @overload"
        yield from _signature("async def ", method.name, _parameters(overload),
                              ast.unparse(overload.returns) if overload.returns else "Any")
        yield "        ..."
        yield ""
    implementation = method.implementation
    yield from _signature("async def ", method.name, _parameters(implementation),
                          ast.unparse(implementation.returns) if implementation.returns else "Any")
    yield from _docstring(method.docstring)
    if method.overloads:
        # The implementation's own signature is hidden by its overloads, and its
        # union arguments match none of them alone: call it untyped, keep the result typed.
        returns = ast.unparse(implementation.returns) if implementation.returns else "Any"
        yield from _wrapped(f"        recorded: {returns} = cast(Any, RECORDER).{method.name}(",
                            _arguments(implementation), ")")
        yield "        return await self._send(recorded)"
    else:
        yield from _wrapped(f"        return await self._send(RECORDER.{method.name}(",
                            _arguments(implementation), "))")
    yield ""


def _pipeline_method(method: Method) -> Iterator[str]:
    yield from _signature("def ", method.name, _parameters(method.implementation), "Self")
    yield from _docstring(method.docstring)
    recorder = "cast(Any, RECORDER)" if method.overloads else "RECORDER"
    yield from _wrapped(f"        return self._queue({recorder}.{method.name}(",
                        _arguments(method.implementation), "))")
    yield ""


def _isort_key(name: str) -> tuple[int, str]:
    """Constants, then classes, then the rest, as ruff's isort orders imported names."""
    bare = name.lstrip("_")
    kind = 0 if bare.isupper() else 1 if bare[:1].isupper() else 2
    return kind, name


def _imports(methods: list[Method], extra: set[str], *, returns: bool) -> list[str]:
    """The import lines for the names the generated signatures use, grouped as isort does."""
    used = set(extra)
    for method in methods:
        functions = (*method.overloads, method.implementation) if returns else (method.implementation,)
        for function in functions:
            used |= {node.id for node in ast.walk(function.args) if isinstance(node, ast.Name)}
            if returns and function.returns is not None:
                used |= {node.id for node in ast.walk(function.returns) if isinstance(node, ast.Name)}
    used -= BUILTINS
    unknown = used - IMPORTS.keys()
    if unknown:
        raise SystemExit(f"add {sorted(unknown)} to kv_client._codegen.IMPORTS")
    modules: dict[str, list[str]] = {}
    for name in sorted(used, key=_isort_key):
        modules.setdefault(IMPORTS[name], []).append(name)
    groups: tuple[list[str], list[str], list[str]] = (["import abc"], [], [])
    for module, names in sorted(modules.items()):
        group = groups[0 if module in ("typing", "collections.abc") else
                       2 if module.startswith(".") else 1]
        group.append(f"from {module} import {', '.join(names)}")
    return [line for group in groups if group for line in (*group, "")]


HEADER: Final = '''"""{summary}

GENERATED by ``python -m kv_client._codegen`` from the blocking methods in the
``_commands_*`` mixins: do not edit. {how}
"""

from __future__ import annotations
'''


def render_async() -> str:
    methods = command_methods()
    lines = [HEADER.format(
        summary="The async client's command methods: each awaits the reply and converts it.",
        how="Each records its blocking twin's call and awaits\n``_send``, which sends it and "
            "converts the reply as the blocking method would.")]
    overloaded = {"Any", "cast", "overload"} if any(method.overloads for method in methods) else set()
    lines += [*_imports(methods, {"RECORDER", "TypeVar"} | overloaded, returns=True),
              'T = TypeVar("T")', "", "",
              "class AsyncCommands(abc.ABC):",
              '    """The command methods of :class:`kv_client.AsyncClient`."""', "",
              "    @abc.abstractmethod",
              "    async def _send(self, recorded: T) -> T:",
              '        """Send the recorded call; return its converted reply."""', ""]
    for method in methods:
        lines += _async_method(method)
    return "\n".join(lines).rstrip() + "\n"


def render_pipeline() -> str:
    methods = command_methods()
    lines = [HEADER.format(
        summary="The pipelines' command methods: each queues its command and returns the pipeline.",
        how="Each records its blocking twin's call and queues it;\n``execute`` converts the "
            "replies as the blocking methods would.")]
    overloaded = {"Any", "cast"} if any(method.overloads for method in methods) else set()
    lines += [*_imports(methods, {"RECORDER", "Self"} | overloaded, returns=False), "",
              "class PipelineCommands(abc.ABC):",
              '    """The command methods of the sync and async pipelines, for chaining."""', "",
              "    @abc.abstractmethod",
              "    def _queue(self, recorded: object) -> Self:",
              '        """Queue the recorded call; return the pipeline."""', ""]
    for method in methods:
        lines += _pipeline_method(method)
    return "\n".join(lines).rstrip() + "\n"


GENERATED: Final = {"_commands_async.py": render_async, "_commands_pipeline.py": render_pipeline}


def main() -> None:
    for name, render in GENERATED.items():
        (SOURCE_DIR / name).write_text(render())


if __name__ == "__main__":
    main()
