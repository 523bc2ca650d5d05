"""The ``isonet`` command group: every step as ``isonet <step>``, loaded only when called."""

from __future__ import annotations

import importlib
import importlib.util

import click

from .. import __version__
from ._common import CONTEXT_SETTINGS

#: step name -> module under isonet_steps.cli that defines ``command``.
STEPS: dict[str, str] = {
    "prepare-star": "prepare_star",
    "prepare-subtomo-star": "prepare_subtomo_star",
    "deconv": "deconv",
    "make-mask": "make_mask",
    "extract": "extract",
    "merge-star": "merge_star",
    "resize": "resize",
    "check": "check",
    "make-phantom": "make_phantom",
    "refine": "refine",
    "predict": "predict",
    "model-info": "model_info",
    "fsc": "fsc",
    "gold-standard": "gold_standard",
    "run": "run",
    "demo": "demo",
    "report": "report",
}


def _available(module: str) -> bool:
    return importlib.util.find_spec(f"{__package__}.{module}") is not None


class LazyGroup(click.Group):
    """Imports a step's module only when that step runs, so ``isonet --help`` stays fast."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Steps whose module is installed, found without importing them (Keras is slow to load)."""
        return [name for name, module in STEPS.items() if _available(module)]

    def get_command(self, ctx: click.Context, name: str):
        """Import the one step asked for; underscores are accepted as users type them from params files."""
        module = STEPS.get(name) or STEPS.get(name.replace("_", "-"))
        if module is None or not _available(module):
            return None
        return importlib.import_module(f"{__package__}.{module}").command


@click.group(cls=LazyGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, "-V", "--version", prog_name="isonet")
def cli() -> None:
    """isonet-nf: IsoNet missing-wedge correction and denoising of cryo-ET tomograms.

    Each step is also its own executable, isonet-<step>. Options accept IsoNet's underscore
    spelling (--cube_size) as well as dashes (--cube-size).
    """
