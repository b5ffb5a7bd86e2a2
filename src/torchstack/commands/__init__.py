"""One module per CLI verb: `register(subparsers)` adds its parser, `run(args)` does the work."""
