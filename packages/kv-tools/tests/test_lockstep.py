"""The four distributions move in lockstep: one version, exact sibling pins."""

import ast
import re
import tomllib
from pathlib import Path

PACKAGES = Path(__file__).parents[2]
NAMES = ["kv-protocol", "kv-server", "kv-client", "kv-tools"]


def version_of(name: str) -> str:
    module = name.replace("-", "_")
    text = (PACKAGES / name / "src" / module / "_version.py").read_text()
    match = re.search(r'__version__ = "([^"]+)"', text)
    assert match, name
    return match[1]


def test_versions_and_pins_agree() -> None:
    versions = {name: version_of(name) for name in NAMES}
    assert len(set(versions.values())) == 1, versions
    [version] = set(versions.values())
    for name in NAMES:
        project = tomllib.loads((PACKAGES / name / "pyproject.toml").read_text())["project"]
        for requirement in project.get("dependencies", []):
            sibling = requirement.split("==")[0]
            if sibling in NAMES:
                assert requirement == f"{sibling}=={version}", (name, requirement)


def test_dependencies_point_one_way() -> None:
    allowed = {"kv-protocol": set(), "kv-server": {"kv-protocol"}, "kv-client": {"kv-protocol"},
               "kv-tools": {"kv-protocol", "kv-client"}}
    for name in NAMES:
        project = tomllib.loads((PACKAGES / name / "pyproject.toml").read_text())["project"]
        siblings = {r.split("==")[0] for r in project.get("dependencies", []) if r.startswith("kv-")}
        assert siblings == allowed[name], name


def test_packages_import_only_what_they_declare() -> None:
    declared = {"kv-protocol": {"cbor2", "crc32c"}, "kv-server": {"kv_protocol", "trio"},
                # sniffio picks AsyncClient's transport; trio is imported only when the
                # caller runs under it; gnupg and pyrage are the [gpg] and [age] extras,
                # imported lazily by the ciphers.
                "kv-client": {"kv_protocol", "sniffio", "trio", "gnupg", "pyrage"},
                "kv-tools": {"kv_protocol", "kv_client", "tqdm",
                             "matplotlib",  # the [plot] extra, imported lazily by _plot
                             "trio"}}  # only by kv-bench --sdk, beside the kv-server it starts
    import sys

    stdlib = set(sys.stdlib_module_names)
    for name, allowed in declared.items():
        module = name.replace("-", "_")
        for path in (PACKAGES / name / "src" / module).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    tops = [alias.name.split(".")[0] for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                    tops = [node.module.split(".")[0]]
                else:
                    continue
                for top in tops:
                    assert top in stdlib or top in allowed or top == module, f"{path}: imports {top}"
