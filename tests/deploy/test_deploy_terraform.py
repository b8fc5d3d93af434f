"""terraform/: the Yandex Cloud footprint (issue 6 § Terraform).

`terraform init`/`validate` need the providers from the registry, which is out
of reach here; so the checks are what works offline: `terraform fmt`, a full
parse of every file with python-hcl2, the module contract (variables and
outputs documented), pinned providers, a remote state backend, and no secret
written into the code.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TERRAFORM = Path(__file__).resolve().parents[2] / "terraform"
TF_FILES = sorted(TERRAFORM.rglob("*.tf"))
MODULES = sorted(p for p in (TERRAFORM / "modules").iterdir() if p.is_dir())
SECRET_NAMES = re.compile(r"password|secret|token|private_key|access_key", re.IGNORECASE)
SECRET_LOOKS = re.compile(
    r"-----BEGIN|AKIA[0-9A-Z]{16}|\bt1\.[A-Za-z0-9_-]{20,}|\bAQVN[A-Za-z0-9_-]{20,}|YC[A-Za-z0-9_-]{38}"
)


def relative(path: Path) -> str:
    return str(path.relative_to(TERRAFORM))


def test_terraform_code_is_formatted(tool: Any) -> None:
    terraform = tool("terraform", "install Terraform 1.11 (the machine image has it)")
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", TF_FILES, ids=relative)
def test_every_file_parses(path: Path, parse_hcl: Any) -> None:
    assert isinstance(parse_hcl(path), dict)


def blocks(document: dict[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for entry in document.get(kind, []):
        yield from entry.items()


@pytest.mark.parametrize("module", [TERRAFORM, *MODULES], ids=relative)
def test_every_module_documents_its_variables_and_outputs(module: Path, parse_hcl: Any) -> None:
    variables = parse_hcl(module / "variables.tf")
    outputs = parse_hcl(module / "outputs.tf")
    assert variables.get("variable"), f"{module.name} has no variables"
    assert outputs.get("output"), f"{module.name} has no outputs"
    for name, variable in blocks(variables, "variable"):
        assert variable.get("description"), f"variable {name}"
        assert variable.get("type"), f"variable {name}"
    for name, output in blocks(outputs, "output"):
        assert output.get("description"), f"output {name}"
        if (SECRET_NAMES.search(name) and not name.endswith("_name")) or name == "database_urls":
            assert output.get("sensitive") is True, f"output {name} must be sensitive"
    versions = parse_hcl(module / "versions.tf")
    ((required,),) = [[b["required_providers"] for b in versions["terraform"]]]
    for name, provider in required[0].items():
        assert "/" in provider["source"], f"{module.name}: provider {name} needs an explicit source"


def test_the_root_module_uses_every_module(parse_hcl: Any) -> None:
    main = parse_hcl(TERRAFORM / "main.tf")
    sources = {block["source"] for _, block in blocks(main, "module")}
    assert sources == {f"./modules/{m.name}" for m in MODULES}


def test_providers_are_pinned_and_the_state_is_remote(parse_hcl: Any) -> None:
    (settings,) = parse_hcl(TERRAFORM / "versions.tf")["terraform"]
    (providers,) = settings["required_providers"]
    assert settings["required_version"]
    for name, provider in providers.items():
        assert re.match(r"~> \d+\.\d+", provider["version"]), (
            f"{name} is not pinned to a minor line"
        )
    assert providers["yandex"]["source"] == "yandex-cloud/yandex"
    ((backend,),) = [parse_hcl(TERRAFORM / "backend.tf")["terraform"][0]["backend"]]
    s3 = backend["s3"]
    assert s3["use_lockfile"] is True
    assert s3["key"]
    assert not {"access_key", "secret_key", "token", "bucket"} & set(s3), (
        "given at init, not in code"
    )


def literal_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from literal_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from literal_strings(item, f"{path}[{index}]")
    elif isinstance(value, str):
        yield path, value


@pytest.mark.parametrize("path", TF_FILES, ids=relative)
def test_no_secret_is_written_in_the_code(path: Path, parse_hcl: Any) -> None:
    text = path.read_text(encoding="utf-8")
    assert not SECRET_LOOKS.search(text), (
        f"{relative(path)} contains something shaped like a credential"
    )
    for where, value in literal_strings(parse_hcl(path)):
        name = where.rsplit(".", 1)[-1]
        if not SECRET_NAMES.search(name) or name in ("description", "sensitive"):
            continue
        # A secret-named attribute may only be computed (${…}), never a literal.
        is_expression = value.startswith("${") or value.startswith("random_password")
        assert is_expression, f"{relative(path)}{where} = {value!r} is a literal secret"
    for name, variable in blocks(parse_hcl(path), "variable"):
        if SECRET_NAMES.search(name):
            assert "default" not in variable, f"variable {name}"
            assert variable.get("sensitive") is True, f"variable {name}"


def test_the_kafka_topics_have_room_for_the_workers(terraform_variables: dict[str, Any]) -> None:
    topics = terraform_variables["kafka_topics"]["default"]
    assert topics == {"figachechnaya.images": 12, "figachechnaya.images.dev": 3}
