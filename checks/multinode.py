"""All-reduce across nodes: one process per GPU on every node, started by torchrun.

    torchrun --nnodes N --nproc-per-node G --node-rank R --master-addr A --master-port P \
        -m checks.multinode --json [--expect FILE]

Each rank reads RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT from torchrun, joins the
NCCL group and runs the same measurement as the single-node check; rank 0 prints the suite's
JSON document with one check, `nccl_multinode`. Exit 0 only if the sums were exact and the
busbw gate (thresholds.nccl_multinode_min_busbw_gbps) held.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import timedelta

from . import SUITE_VERSION
from ._allreduce_worker import measure
from .expect import Expect, ExpectError, load_expect
from .frame import frame
from .registry import CHECK_IDS
from .result import CheckResult, Report, exit_code
from .suite.nccl import Plan, evaluate, message_sizes

CHECK_ID = "nccl_multinode"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m checks.multinode")
    parser.add_argument("--json", action="store_true", help="print the JSON document (rank 0)")
    parser.add_argument("--frame", action="store_true",
                        help="with --json: frame the document (checks/frame.py) for Job logs")
    parser.add_argument("--expect", metavar="FILE")
    parser.add_argument("--timeout", type=float, default=600.0, help="NCCL timeout, seconds")
    parser.add_argument("--backend", choices=("nccl", "gloo"), default="nccl",
                        help="gloo: a CPU stand-in with the same code path (tests)")
    args = parser.parse_args(argv)
    if args.frame and not args.json:
        parser.error("--frame needs --json")
    try:
        expect = load_expect(args.expect, CHECK_IDS) if args.expect else Expect()
    except ExpectError as exc:
        print(f"checks.multinode: error: {exc}", file=sys.stderr)
        return 2
    needed = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR")
    missing = [name for name in needed if name not in os.environ]
    if missing:
        print(f"checks.multinode: error: {', '.join(missing)} not set; start it with torchrun",
              file=sys.stderr)
        return 2

    import torch
    import torch.distributed as dist

    local_rank = int(os.environ["LOCAL_RANK"])
    device = torch.device("cpu")
    if args.backend == "nccl":
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    started = time.monotonic()
    dist.init_process_group(args.backend, timeout=timedelta(seconds=args.timeout))
    sizes = message_sizes(expect.thresholds.nccl_max_bytes)
    document = measure(device, sizes, warmup=5, iters=20)
    rank = dist.get_rank()
    dist.destroy_process_group()
    if rank != 0:
        return 0
    gate = expect.thresholds.nccl_multinode_min_busbw_gbps  # the pod network, not NVLink
    plan = Plan(args.backend, int(document["world_size"]), sizes, 5, 20)
    outcome = evaluate(document, plan, gate)
    result = CheckResult.from_outcome(CHECK_ID, outcome, time.monotonic() - started)
    report = Report(SUITE_VERSION, expect.image_id, "required", True,
                    {"nodes": os.environ.get("GROUP_WORLD_SIZE"),
                     "world_size": document["world_size"]}, [result],
                    image_digest=expect.image_digest, finished_at=time.time())
    if args.json:
        print(frame(report.to_dict()) if args.frame else report.to_json(), flush=True)
    else:
        print(f"{result.status.upper()} {CHECK_ID}: {result.message}")
    return exit_code([result])


if __name__ == "__main__":
    sys.exit(main())
