"""The `plasticity` command (`main`): its options in `arguments`, what each command does in `commands`."""

from plasticity.cli.commands import main

__all__ = ["main"]
