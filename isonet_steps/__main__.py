"""``python -m isonet_steps <step>``: the same as ``isonet <step>``."""

from .cli.main import cli

if __name__ == "__main__":
    cli()
