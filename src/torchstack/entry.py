"""The entry point (`torchstack`, `python -m torchstack`): Ctrl-C is exit 130 from its first line.

Nothing is imported before the `try`, so an interrupt while the CLI's modules load (a second
or two on a busy machine) is reported like one during a verb, never as a traceback.
"""


def run() -> int:
    try:
        from torchstack.cli import main

        return main()
    except KeyboardInterrupt:
        import sys

        print("error: interrupted while starting; nothing was done", file=sys.stderr)
        return 130
