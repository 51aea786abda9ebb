"""Philox4x32-10, a counter-based random generator written in plain integer torch ops.

A counter-based generator maps a counter and a key to random bits with a fixed function, so the
numbers for (instance i, draw j, step t) can be computed anywhere, in any order, with no state to
carry: inside a compiled graph, inductor fuses them with the code that uses them and nothing is
written to memory. Philox4x32-10 (Salmon et al. 2011, "Parallel random numbers: as easy as 1, 2,
3", the generator behind cuRAND and torch's CUDA `rand`) turns a 128-bit counter (c0, c1, c2, c3)
and a 64-bit key (k0, k1) into four 32-bit words by ten rounds of

    (c0, c1, c2, c3) <- (hi(M1·c2) ^ c1 ^ k0,  lo(M1·c2),  hi(M0·c0) ^ c3 ^ k1,  lo(M0·c0))
    (k0, k1) <- (k0 + 0x9E3779B9, k1 + 0xBB67AE85) mod 2³²

with M0 = 0xD2511F53, M1 = 0xCD9E8D57, and hi/lo the upper and lower 32 bits of the 64-bit
product. The words are held as int64 tensors with values in [0, 2³²); each product is formed from
16-bit halves so no intermediate leaves the int64 range.
"""

from __future__ import annotations

import torch

MASK32 = 0xFFFFFFFF
_M0, _M1 = 0xD2511F53, 0xCD9E8D57
_W0, _W1 = 0x9E3779B9, 0xBB67AE85
ROUNDS = 10


def _mulhilo(a: torch.Tensor, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The upper and lower 32 bits of m·a, for int64 `a` in [0, 2³²) and a 32-bit constant `m`.

    The int64 product wraps modulo 2⁶⁴ (two's complement), which keeps all 64 bits of m·a.
    """
    product = a * m
    return (product >> 32) & MASK32, product & MASK32


def philox4x32(
    c0: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, c3: torch.Tensor, k0: torch.Tensor, k1: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Philox4x32-10 of counter (c0, c1, c2, c3) under key (k0, k1).

    All arguments are int64 tensors with values in [0, 2³²) that broadcast together (the key is
    usually two 0-d tensors); returns four int64 tensors of their broadcast shape, values in [0, 2³²).
    """
    for round_ in range(ROUNDS):
        if round_:
            k0, k1 = (k0 + _W0) & MASK32, (k1 + _W1) & MASK32
        hi0, lo0 = _mulhilo(c0, _M0)
        hi1, lo1 = _mulhilo(c2, _M1)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
    return c0, c1, c2, c3


def bits_to_uniform(bits: torch.Tensor) -> torch.Tensor:
    """32-bit words (int64) -> float32 uniforms on [0, 1), from their upper 24 bits (exact in float32)."""
    return (bits >> 8).to(torch.float32) * (1.0 / (1 << 24))


def key_from_generator(generator: torch.Generator | None, device: torch.device | str) -> torch.Tensor:
    """A Philox key `(2,)` int64 on `device`, drawn from `generator` (torch's global one if None).

    Drawing advances the generator, so successive calls give independent streams.
    """
    source = "cpu" if generator is None else generator.device
    return torch.randint(0, 1 << 32, (2,), generator=generator, dtype=torch.int64, device=source).to(device)


def uniform_batches(
    key: torch.Tensor, instance: torch.Tensor, batch: int, n_uniforms: int, step: torch.Tensor, stream: int = 0
) -> list[torch.Tensor]:
    """`batch` samples of `n_uniforms` uniforms on [0, 1) each, per instance, at one step of one stream.

    Counter = (instance, row, step, stream·2¹⁶ + block). One Philox call gives four words; when
    `n_uniforms` divides into four, each call serves 4 // n_uniforms samples, whose rows are returned
    as separate sub-batches: the words of each lane are then plain `(rows, inst)` tensors that inductor
    fuses with what follows, with no interleaving of samples. Wider samples use several calls
    (blocks) per sample.

    Args:
        key: `(2,)` int64, from `key_from_generator`.
        instance: `(inst,)` int64 global instance indices (so a chunk draws what the whole would).
        step: 0-d int64, the training step (or the evaluation block).
        stream: 0 for training data, 1 for evaluation data, ...

    Returns:
        A list of sub-batches `(rows, inst, n_uniforms)`, together `batch` samples per instance.
    """
    per_call = 4 // n_uniforms if n_uniforms <= 4 and batch % max(1, 4 // n_uniforms) == 0 else 1
    rows = batch // per_call
    c0 = instance[None, :]
    c1 = torch.arange(rows, device=instance.device, dtype=torch.int64)[:, None]
    c2 = (step & MASK32).expand(1, 1)
    words = []
    for block in range(-(-n_uniforms // 4) if per_call == 1 else 1):
        c3 = torch.full((1, 1), (stream << 16) + block, dtype=torch.int64, device=instance.device)
        words += philox4x32(c0, c1, c2, c3, key[0], key[1])
    lanes = [bits_to_uniform(w) for w in words]
    return [torch.stack(lanes[k * n_uniforms : (k + 1) * n_uniforms], dim=-1) for k in range(per_call)]
