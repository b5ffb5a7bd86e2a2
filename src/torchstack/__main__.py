from torchstack.entry import run

raise SystemExit(run())
