"""Which registers are live after each ``bar.sync``: only those are saved to the warp's register
file at a phase exit and loaded back on resume. Saving every register would keep all of them
alive across every loop of the kernel, which multiplies the SSA work (and the JIT time).

A backward may-liveness over the structured Thread IR: a read makes a register (or a whole
register array) live; a write kills it only when it certainly writes every lane (a plain
register, no guard, outside lane-dependent control flow). Loops iterate to a fixed point.
"""

from __future__ import annotations

from tilevm.ir.thread.stmts import For, If, Instr, Stmt, While
from tilevm.ir.thread.values import Elem, IndexOp, Reg

__all__ = ["live_after_barriers"]


def _reads(x: object, out: set[int]) -> None:
    if isinstance(x, Reg):
        out.add(id(x))
    elif isinstance(x, Elem):
        out.add(id(x.array))
        _index_reads(x.index, out)


def _index_reads(index: object, out: set[int]) -> None:
    if isinstance(index, Reg):
        out.add(id(index))
    elif isinstance(index, IndexOp):
        _index_reads(index.a, out)
        _index_reads(index.b, out)


class _Liveness:
    def __init__(self, temps: set[int]) -> None:
        self.at_barrier: dict[int, set[int]] = {}
        self.temps = temps

    def block(self, stmts: list[Stmt], live: set[int], divergent: bool) -> set[int]:
        for s in reversed(stmts):
            live = self.stmt(s, live, divergent)
        return live

    def stmt(self, s: Stmt, live: set[int], divergent: bool) -> set[int]:
        if isinstance(s, Instr):
            if s.op.name == "bar.sync":
                self.at_barrier.setdefault(id(s), set()).update(live)
            live = set(live)
            if (isinstance(s.dst, Reg) and s.guard is None
                    and (not divergent or id(s.dst) in self.temps)):
                live.discard(id(s.dst))
            elif isinstance(s.dst, Elem):
                _index_reads(s.dst.index, live)
                live.add(id(s.dst.array))   # a partial write: the other elements stay live
            elif isinstance(s.dst, Reg):
                live.add(id(s.dst))         # a masked write keeps the inactive lanes' values
            for a in s.args:
                _reads(a, live)
            if s.guard is not None:
                live.add(id(s.guard))
            return live
        if isinstance(s, If):
            inner = divergent or not s.uniform
            live = self.block(s.then_body, live, inner) | self.block(s.else_body, live, inner)
            _reads(s.cond, live)
            return live
        if isinstance(s, While):
            return self.while_(s, live, divergent)
        assert isinstance(s, For)
        inner = divergent or not (s.uniform or s.unroll)
        head = set(live)
        while True:
            new = set(live) | self.block(s.body, head | {id(s.var)}, inner)
            new.add(id(s.var))
            _reads(s.stop, new)
            if new == head:
                break
            head = new
        live = set(head)
        if divergent:
            live.add(id(s.var))
        else:
            live.discard(id(s.var))
        _reads(s.start, live)
        return live

    def while_(self, s: While, live: set[int], divergent: bool) -> set[int]:
        """Live at the loop's head: the least fixed point of head = live-in of ``cond_body``
        given (the cond's reads, and what is live after the test: ``live`` on exit, the body's
        live-in on the way round). Starting from nothing, each round can only grow."""
        inner = divergent or not s.uniform
        head: set[int] = set()
        while True:
            after_test = set(live) | self.block(s.body, head, inner)
            _reads(s.cond, after_test)
            new = self.block(s.cond_body, after_test, inner)
            if new == head:
                return new
            head = new


def live_after_barriers(body: list[Stmt], temps: set[int] | None = None
                        ) -> dict[int, set[int]]:
    """For each ``bar.sync`` (by ``id``), the ids of the registers and register arrays that may
    be read after it before being written. ``temps`` (see :func:`temporaries`) are written in
    every lane even under a partial mask, so their writes kill."""
    lv = _Liveness(temps or set())
    lv.block(body, set(), False)
    return lv.at_barrier


def temporaries(body: list[Stmt]) -> set[int]:
    """Registers whose inactive lanes are never observed, so that a write under a partial mask
    may write every lane (no blend with the old value, which would keep it alive).

    A register qualifies when one unguarded instruction writes it, and every read of it lies in a
    later statement of the same statement list (possibly nested in it): such reads run under a
    subset of the writer's mask, in the same iteration of any enclosing loop.
    """
    writes: dict[int, list[tuple[int, int]]] = {}
    reads: dict[int, list[list[tuple[int, int]]]] = {}
    excluded: set[int] = set()

    def visit(stmts: list[Stmt], path: list[tuple[int, int]], key: int | None = None,
              base: int = 0) -> None:
        # statements are positioned as (list key, index); ``key``/``base`` place a list inside a
        # longer virtual one (a While's cond_body, test and body)
        lst = id(stmts) if key is None else key
        for i, s in enumerate(stmts, base):
            here = [*path, (lst, i)]
            used: set[int] = set()
            if isinstance(s, Instr):
                for a in s.args:
                    _reads(a, used)
                if s.guard is not None:
                    used.add(id(s.guard))
                if isinstance(s.dst, Reg):
                    if s.guard is None:
                        writes.setdefault(id(s.dst), []).append((lst, i))
                    else:
                        excluded.add(id(s.dst))
                elif isinstance(s.dst, Elem):
                    _index_reads(s.dst.index, used)
            elif isinstance(s, If):
                _reads(s.cond, used)
                visit(s.then_body, here)
                visit(s.else_body, here)
            elif isinstance(s, While):
                # cond_body, the test and body run in this order in every iteration, each part
                # under a subset of the lanes of the part before: one statement list for this
                # rule, the test at position len(cond_body)
                n = len(s.cond_body)
                visit(s.cond_body, here, id(s), 0)
                tested: set[int] = set()
                _reads(s.cond, tested)
                for r in tested:
                    reads.setdefault(r, []).append([*here, (id(s), n)])
                visit(s.body, here, id(s), n + 1)
            else:
                excluded.add(id(s.var))
                _reads(s.start, used)
                _reads(s.stop, used)
                visit(s.body, here)
            for r in used:
                reads.setdefault(r, []).append(here)

    visit(body, [])
    out = set()
    for r, ws in writes.items():
        if len(ws) != 1 or r in excluded:
            continue
        lst, idx = ws[0]
        if all(any(p[0] == lst and p[1] > idx for p in path) for path in reads.get(r, [])):
            out.add(r)
    return out
