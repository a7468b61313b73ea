"""Top-1 routing of tokens to experts, as a mixture-of-experts layer does it (issue 12's must-show
"top-k routing (argmax + scatter)"): each token's expert is the argmax of its router logits; the
token's row is scattered to its expert's slot (the expert's running count, taken by an atomic),
and the counts form a histogram. Checked against numpy on the interpreter and — through the
suite's autouse check — on the CPU backend and in cubins for sm_80/sm_90."""

from __future__ import annotations

import numpy as np

import tilevm as tv
from tilevm import f32, i32

TOKENS, EXPERTS = 32, 8


@tv.kernel
def route(logits: tv.Global[f32, "t", "e"], expert: tv.Global[i32, "t"],
          counts: tv.Global[i32, "e"], slot: tv.Global[i32, "t"]):
    tv.launch(grid=1, warps=4)
    scores = tv.load(logits, (0, 0), (TOKENS, EXPERTS), other=-float("inf"))
    chosen = tv.argmax(scores, 1)                      # i32 per token: first maximum on ties
    tv.store(expert, chosen, (0,))
    real = tv.arange(0, TOKENS) < t                    # rows past t are no tokens
    taken = tv.atomic_add(counts, 1, (chosen,), mask=real)  # scatter: one count per token
    tv.store(slot, taken, (0,))                        # the token's place among its expert's


def test_tokens_are_routed_to_their_argmax_expert_and_counted():
    rng = np.random.default_rng(11)
    t = 29  # fewer tokens than the tile: the rest are masked off
    logits = rng.standard_normal((t, EXPERTS)).astype(np.float32)
    logits[3, [1, 5]] = logits[3].max() + 1  # a tie: the first index wins
    expert = np.zeros(t, np.int32)
    counts = np.zeros(EXPERTS, np.int32)
    slot = np.zeros(t, np.int32)
    route(logits, expert, counts, slot)
    want = np.argmax(logits, 1)
    assert np.array_equal(expert, want) and expert[3] == 1
    assert np.array_equal(counts, np.bincount(want, minlength=EXPERTS))
    # each expert's tokens took the slots 0, 1, 2, … once each (the order is the atomics')
    for e in range(EXPERTS):
        assert sorted(slot[want == e].tolist()) == list(range(int(counts[e])))
