"""
Reference solution (hidden: never leaves the app host): three passes, two of them Triton kernels.

1. ``_block_summary``: per block of BLOCK elements, the parity of its positives ``P``, the sum of
   its elements included under a carry-in parity of 0 (``S0``) and the sum of all its elements
   (``T``; under carry-in 1 the included sum is ``T - S0``, because the parity flips everywhere).
2. A scan over the (few) blocks in PyTorch: each block's carry-in parity and offset.
3. ``_block_scan``: each block recomputes its local scan, applies its carry and offset, stores.

All sums are int32 and wrap, which agrees with the exact int64 reference modulo 2**32.
"""
import torch
import triton
import triton.language as tl

BLOCK = 4096


@triton.jit
def _block_summary(x_ptr, parity_ptr, s0_ptr, total_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n, other=0)
    pos = (x > 0).to(tl.int32)
    before = tl.cumsum(pos, 0) - pos
    included = tl.where((before & 1) == 1, x, 0)
    tl.store(parity_ptr + pid, tl.sum(pos, 0) & 1)
    tl.store(s0_ptr + pid, tl.sum(included, 0))
    tl.store(total_ptr + pid, tl.sum(x, 0))


@triton.jit
def _block_scan(x_ptr, y_ptr, carry_ptr, offset_ptr, n, BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + offs, mask=offs < n, other=0)
    carry = tl.load(carry_ptr + pid)
    offset = tl.load(offset_ptr + pid)
    pos = (x > 0).to(tl.int32)
    before = tl.cumsum(pos, 0) - pos
    included = tl.where(((before + carry) & 1) == 1, x, 0)
    tl.store(y_ptr + offs, tl.cumsum(included, 0) + offset, mask=offs < n)


def prefix_sum(x: torch.Tensor) -> torch.Tensor:
    n = x.numel()
    blocks = triton.cdiv(n, BLOCK)
    parity = torch.empty(blocks, dtype=torch.int32, device=x.device)
    s0 = torch.empty_like(parity)
    total = torch.empty_like(parity)
    _block_summary[(blocks,)](x, parity, s0, total, n, BLOCK=BLOCK)
    carry = ((torch.cumsum(parity, 0) - parity) & 1).to(torch.int32)  # exclusive parity scan
    contribution = torch.where(carry == 1, total.to(torch.int64) - s0, s0.to(torch.int64))
    offset = (torch.cumsum(contribution, 0) - contribution).to(torch.int32)  # wraps like int32 sums
    y = torch.empty_like(x)
    _block_scan[(blocks,)](x, y, carry, offset, n, BLOCK=BLOCK)
    return y
