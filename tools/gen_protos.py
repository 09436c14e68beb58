"""Generate Python code and mypy stubs from protos/ with local plugins only.

`python tools/gen_protos.py` rewrites hookline/v1/; `--check` regenerates into a temporary
directory and fails when the checked-in code is stale.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
PACKAGE_DIR = Path("hookline") / "v1"


def generate(out_dir: Path) -> None:
    protos = sorted(
        str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto")
    )
    well_known = str(resources.files("grpc_tools") / "_proto")
    bin_dir = Path(sys.executable).parent
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={bin_dir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bin_dir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    (out_dir / "hookline" / "__init__.py").touch()
    (out_dir / PACKAGE_DIR / "__init__.py").touch()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="fail if hookline/v1 is stale")
    check = parser.parse_args().check
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        generate(out)
        fresh, current = out / PACKAGE_DIR, ROOT / PACKAGE_DIR
        if check:
            names = sorted(p.name for p in fresh.iterdir())
            _, mismatch, errors = filecmp.cmpfiles(fresh, current, names, shallow=False)
            extra = {p.name for p in current.glob("*.py*")} - set(names)
            if mismatch or errors or extra:
                raise SystemExit(
                    f"generated code is stale: {sorted(mismatch + errors + list(extra))}; "
                    "run python tools/gen_protos.py"
                )
            print("generated code is fresh")
            return
        shutil.rmtree(current, ignore_errors=True)
        shutil.copytree(fresh, current)
        print(f"wrote {current.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
