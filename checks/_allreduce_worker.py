"""One rank of the all-reduce test (started by checks.suite.nccl, one process per GPU).

    python -m checks._allreduce_worker --rank R --world-size N --backend nccl|gloo \
        --port P --sizes 1048576,2097152 --warmup 5 --iters 20 --timeout 290

Rank r fills its buffer with r+1; after the sum every element must equal n(n+1)/2 exactly
(small integers are exact in float32). Rank 0 prints one line, RESULT_PREFIX + JSON, with the
slowest rank's mean time per size (as nccl-tests does).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from typing import Any

RESULT_PREFIX = "ALLREDUCE_RESULT "


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="checks._allreduce_worker")
    parser.add_argument("--rank", type=int, required=True)
    parser.add_argument("--world-size", type=int, required=True)
    parser.add_argument("--backend", choices=("nccl", "gloo"), required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--sizes", required=True, help="comma-separated byte counts")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=120.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(sys.argv[1:] if argv is None else argv)
    import torch
    import torch.distributed as dist

    timeout = timedelta(seconds=args.timeout)
    rank, world = args.rank, args.world_size
    if args.backend == "nccl":
        torch.cuda.set_device(rank)
        device = torch.device("cuda", rank)
    else:
        device = torch.device("cpu")

    # The launcher hosts the store (port 0 picked by the OS), so there is no port race.
    store = dist.TCPStore(  # type: ignore[attr-defined]
        "127.0.0.1", args.port, is_master=False, timeout=timeout
    )
    dist.init_process_group(args.backend, store=store, rank=rank, world_size=world, timeout=timeout)
    document = measure(device, [int(s) for s in args.sizes.split(",")], args.warmup, args.iters)
    if rank == 0:
        print(RESULT_PREFIX + json.dumps({"backend": args.backend, **document}), flush=True)
    dist.destroy_process_group()
    return 0


def measure(
    device: Any, sizes: list[int], warmup: int, iters: int, dist: Any = None
) -> dict[str, Any]:
    """All-reduce each size on an initialised process group; every rank calls this.

    Returns the world size, the count of wrong elements across all ranks and, per size, the
    slowest rank's mean seconds (as nccl-tests reports). `dist` is torch.distributed (a fake
    in unit tests). The first all-reduce of each size checks the sums and counts as the
    first warm-up call: NCCL sets up its channels for a size on first use.
    """
    import torch

    if dist is None:
        import torch.distributed as dist

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    rank, world = dist.get_rank(), dist.get_world_size()
    expected = float(world * (world + 1) // 2)
    mismatches = 0
    results: list[dict[str, Any]] = []
    for size in sizes:
        buffer = torch.full((size // 4,), float(rank + 1), dtype=torch.float32, device=device)
        dist.all_reduce(buffer)
        mismatches += int((buffer != expected).sum().item())
        buffer.zero_()  # keeps the timed repeats finite; timing does not depend on values
        for _ in range(max(warmup - 1, 0)):
            dist.all_reduce(buffer)
        dist.all_reduce(torch.zeros(1, device=device))  # line the ranks up before timing
        sync()
        start = time.perf_counter()
        for _ in range(iters):
            dist.all_reduce(buffer)
        sync()
        mean = torch.tensor(
            [(time.perf_counter() - start) / iters], dtype=torch.float64, device=device
        )
        dist.all_reduce(mean, op=dist.ReduceOp.MAX)
        results.append({"bytes": size, "seconds": float(mean.item())})
        del buffer
    total = torch.tensor([mismatches], dtype=torch.int64, device=device)
    dist.all_reduce(total)
    return {"world_size": world, "mismatches": int(total.item()), "expected_value": expected,
            "results": results}


if __name__ == "__main__":
    sys.exit(main())
