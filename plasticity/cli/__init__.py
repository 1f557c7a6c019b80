"""The `plasticity` command (`main`): its options in `arguments`, what each command does in `commands`.

`arguments` imports no torch, so help and argument errors answer at once; `commands`, and with it torch
and the library, is imported only once the arguments are read.
"""

from __future__ import annotations

from plasticity.cli.arguments import build_parser


def main(argv: list[str] | None = None) -> int:
    """Read the arguments (exiting 2 on a bad one, 0 after --help), then run the command; the exit status."""
    args = build_parser().parse_args(argv)
    from plasticity.cli.commands import run  # torch and the library load here, once the arguments are good

    return run(args)


__all__ = ["main"]
