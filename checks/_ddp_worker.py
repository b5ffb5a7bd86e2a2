"""One rank of the train check's DDP step, started by torchrun (checks.suite.train):

    python -m torch.distributed.run --standalone --nproc-per-node N \
        -m checks._ddp_worker --backend gloo|nccl --out DIR

Every rank builds the same tiny model (same seed), takes its equal slice of one fixed batch,
runs forward/backward under DistributedDataParallel and rank 0 saves the averaged gradients
to DIR/grads.pt. The train check compares them with one process's gradients on the whole
batch: DDP averages the ranks' gradients of their slice means, which equals the gradient of
the whole batch's mean loss when the slices are equal.

`tiny_model` and `fixed_batch` are shared with the check so both sides build the same thing.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import timedelta
from typing import Any

BATCH, FEATURES, HIDDEN = 24, 8, 16


def tiny_model(torch: Any) -> Any:
    torch.manual_seed(1234)
    return torch.nn.Sequential(
        torch.nn.Linear(FEATURES, HIDDEN), torch.nn.Tanh(), torch.nn.Linear(HIDDEN, 1)
    )


def fixed_batch(torch: Any) -> tuple[Any, Any]:
    generator = torch.Generator().manual_seed(99)
    x = torch.randn(BATCH, FEATURES, generator=generator)
    y = x.sum(dim=1, keepdim=True) * 0.5 + 0.1 * torch.randn(BATCH, 1, generator=generator)
    return x, y


def loss_of(torch: Any, model: Any, x: Any, y: Any) -> Any:
    return torch.nn.functional.mse_loss(model(x), y)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="checks._ddp_worker")
    parser.add_argument("--backend", choices=("gloo", "nccl"), required=True)
    parser.add_argument("--out", required=True, help="folder for rank 0's grads.pt")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ["LOCAL_RANK"])
    if BATCH % world:
        print(f"batch {BATCH} does not split into {world} equal slices", file=sys.stderr)
        return 2
    device = torch.device("cpu")
    if args.backend == "nccl":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    dist.init_process_group(args.backend, timeout=timedelta(seconds=args.timeout))
    model = tiny_model(torch).to(device)
    ddp = DistributedDataParallel(model, device_ids=[local] if device.type == "cuda" else None)
    x, y = fixed_batch(torch)
    share = BATCH // world
    part = slice(rank * share, (rank + 1) * share)
    loss_of(torch, ddp, x[part].to(device), y[part].to(device)).backward()
    if rank == 0:
        grads = {name: p.grad.detach().cpu() for name, p in model.named_parameters()}
        torch.save({"world_size": world, "backend": args.backend, "grads": grads},
                   os.path.join(args.out, "grads.pt"))
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
