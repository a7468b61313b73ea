"""Static GPU code of the examples the lowering handles: registers (ptxas) and SASS instructions
(the disassembled listing, NOP padding included) of ``vector_add`` and ``softmax`` for sm_80 and
sm_90, the general kernel and the one specialized for aligned inputs. No GPU needed.

Usage: ``python bench/sass_examples.py [--out results.json]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
INSTRUCTION = re.compile(r"^\s+/\*[0-9a-f]{4,}\*/\s+\S")


def load_example(name: str):
    """The kernel ``name`` of ``examples/name.py``."""
    sys.path.insert(0, str(EXAMPLES))
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


def main(argv: list[str] | None = None) -> int:
    import tilevm as tv
    from tilevm.backend.cuda.sass import disassemble

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args(argv)
    rows = []
    for name in ("vector_add", "softmax"):
        kernel = load_example(name)
        for arch in ("sm_80", "sm_90"):
            for spec in (None, "aligned"):
                compiled = tv.compile(kernel, arch, spec=spec)
                listing = disassemble(compiled.cubin).splitlines()
                row = {"kernel": name, "arch": arch, "spec": spec or "general",
                       "registers": compiled.resources.registers,
                       "sass_instructions": sum(1 for line in listing if INSTRUCTION.match(line))}
                rows.append(row)
                print(f"{name:10s} {arch} {row['spec']:8s} registers {row['registers']:3d}  "
                      f"SASS instructions {row['sass_instructions']}")
    if args.out:
        args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
