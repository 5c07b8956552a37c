"""The ``resilient-llm`` command: ``demo`` and ``chaos serve``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .errors import ConfigurationError

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="resilient-llm")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="run the seed story (offline by default)")
    demo.add_argument("--live", action="store_true", help="use the real providers (keys from env)")
    chaos = commands.add_parser("chaos", help="the local chaos provider server")
    chaos_commands = chaos.add_subparsers(dest="chaos_command", required=True)
    serve = chaos_commands.add_parser("serve", help="serve the chaos providers on 127.0.0.1")
    serve.add_argument("--plan", help="JSON fault plan: {provider: {...}}")
    serve.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)

    if args.command == "demo":
        from .demo import run_demo

        run_demo(live=args.live)
        return 0
    from .testing.chaos import Plan
    from .testing.chaos import serve as serve_chaos

    try:
        plans = Plan.load(args.plan) if args.plan else {}
        serve_chaos(plans, port=args.port)
    except ConfigurationError as error:
        parser.error(str(error))  # a user's mistake: one line, no traceback
    return 0


if __name__ == "__main__":
    sys.exit(main())
