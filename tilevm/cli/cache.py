"""``tilevm cache list|info|clear|verify``: the binary cache of compiled kernels
(:mod:`tilevm.runtime.kernel_cache`)."""

from __future__ import annotations

import argparse
import json

from tilevm.cli.common import UserError
from tilevm.cli.info import table
from tilevm.runtime import kernel_cache

__all__ = ["add_parser"]


def _age(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{seconds:.0f} s"


def _size(n: int) -> str:
    return f"{n / 1024:.1f} KiB" if n >= 1024 else f"{n} B"


def _list(args: argparse.Namespace) -> int:
    entries = kernel_cache.list_entries(args.dir)
    folder = args.dir or kernel_cache.cache_directory()
    if not entries:
        print(f"no compiled kernels in {folder}")
        return 0
    rows = [[e.key[:12], e.kernel, e.target, _size(e.size_bytes), _age(e.age_seconds),
             e.specialization] for e in entries]
    print(table(["key", "kernel", "target", "size", "age", "specialization"], rows))
    total = sum(e.size_bytes for e in entries)
    print(f"\n{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}, {_size(total)}, in "
          f"{folder}")
    return 0


def _info(args: argparse.Namespace) -> int:
    try:
        info = kernel_cache.entry_info(args.key, args.dir)
    except KeyError as e:
        raise UserError(e.args[0]) from None
    print(f"key           {info['key']}")
    for name in ("kernel", "target"):
        print(f"{name:<14}{info.get(name)}")
    print(f"valid         {'yes' if info['valid'] else 'no: ' + str(info['problem'])}")
    for path, size in info["files"].items():
        print(f"file          {path} ({_size(size)})")
    if info.get("resources"):
        print(f"resources     {json.dumps(info['resources'], sort_keys=True)}")
    for name, value in (info.get("parts") or {}).items():
        shown = value if len(value) <= 100 else value[:97] + "..."
        print(f"key part      {name} = {shown}")
    if info.get("tile_ir_text"):
        print("\n" + info["tile_ir_text"].rstrip())
    return 0


def _verify(args: argparse.Namespace) -> int:
    results = kernel_cache.verify(args.dir)
    bad = [(key, problem) for key, problem in results if problem is not None]
    for key, problem in bad:
        print(f"{key[:12]}  {problem}")
    print(f"{len(results) - len(bad)} of {len(results)} entries valid")
    if bad:
        raise UserError(f"{len(bad)} corrupt entr{'y' if len(bad) == 1 else 'ies'}: each is "
                        "rebuilt on its next use ('tilevm cache clear' removes them now)")
    return 0


def _clear(args: argparse.Namespace) -> int:
    removed = kernel_cache.clear(args.dir, compiler_caches=args.all)
    print(f"removed {removed} file{'' if removed == 1 else 's'}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    """Add ``cache`` and its subcommands to the command's subparsers."""
    p = commands.add_parser("cache", help="list, inspect, verify or clear the compiled-kernel "
                                          "cache",
                            description="The binary cache of compiled kernels: one entry per "
                                        "kernel, constants, specialization and target, under "
                                        "$TILEVM_CACHE_DIR/kernels (docs/gpu.md, 'The binary "
                                        "cache').")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True,
                               help="list, info, verify or clear")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", help="the kernel cache folder (default: the kernels folder of "
                                      "the cache directory)")
    a = actions.add_parser("list", parents=[common], help="one line per entry, newest first",
                           description="List the entries: key, kernel, target, size, age, "
                                       "specialization.")
    a.set_defaults(run=_list)
    a = actions.add_parser("info", parents=[common], help="everything about one entry",
                           description="Show one entry: its files, validity, resources, the "
                                       "parts of its key and its Tile IR.")
    a.add_argument("key", help="the entry's key or a unique prefix of it")
    a.set_defaults(run=_info)
    a = actions.add_parser("verify", parents=[common], help="check every entry's checksums",
                           description="Check every entry's checksums; exit status 1 when one "
                                       "is corrupt.")
    a.set_defaults(run=_verify)
    a = actions.add_parser("clear", parents=[common], help="remove every entry",
                           description="Remove every entry (tuning results are kept).")
    a.add_argument("--all", action="store_true",
                   help="also clear the NVRTC and CPU-backend JIT caches")
    a.set_defaults(run=_clear)
