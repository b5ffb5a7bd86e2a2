"""`torchstack plan`: the images the matrix expands to, as a table or as JSON for CI."""

from __future__ import annotations

import argparse
import json

from torchstack.commands.common import Subparsers, add_selection, matrix_of
from torchstack.progress import format_table
from torchstack.resolve.order import BuildPlan
from torchstack.resolve.state import plan_json, resolve

COLUMNS = ("id", "parent", "flavor", "torch", "cuda", "python", "index", "tags")


def register(sub: Subparsers) -> None:
    parser = sub.add_parser("plan", help="list the images the matrix expands to")
    add_selection(parser)
    parser.add_argument("--json", action="store_true",
                        help='print {"include": [...]}, usable as a GitHub Actions fromJSON matrix:'
                             " per image its chain (parent, ancestors, depth), local tag, OS"
                             " base image, flags, index, tags and layer groups")
    parser.add_argument("--layers", action="store_true",
                        help="show each image's install layers: the groups of its lock, in"
                             " build order, with their wheels' sizes (render/groups.py)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    matrix = matrix_of(args)
    resolved = resolve(matrix, args.globs, everything=args.everything)  # no Docker Engine
    rows = plan_json(resolved)
    if args.json:
        print(json.dumps({"include": rows}, indent=2))
        return 0
    if args.layers:
        print(layers_text(resolved.plan))
        return 0
    table = [
        [r["id"], r["parent"] or "-", r["flavor"], r["torch"], r["cuda"], r["python"],
         r["index"] + (" (legacy)" if r["legacy"] else ""),
         " ".join([r["release_tag"], *r["aliases"]])]
        for r in rows
    ]
    print(format_table(COLUMNS, table))
    print(f"\n{len(rows)} images; default group: {', '.join(matrix.default_group) or '(none)'}")
    return 0


def layers_text(plan: BuildPlan) -> str:
    """Per image, its layer groups (NN name, wheels, MB of wheels), or why there are none."""
    blocks = []
    for planned in plan.images:
        spec = planned.spec
        if planned.groups is None:
            blocks.append(f"{spec.id}: unlocked (run `torchstack lock {spec.id}`)")
            continue
        table = [[f"{g.position:02d}", g.name, str(len(g.dists)), f"{g.wheel_bytes / 1e6:,.0f} MB"]
                 for g in planned.groups]
        total = sum(g.wheel_bytes for g in planned.groups) / 1e6
        blocks.append(f"{spec.id} (on {spec.parent_id or spec.os}; {total:,.0f} MB of wheels)\n"
                      + format_table(("layer", "group", "wheels", "size"), table))
    return "\n\n".join(blocks)
