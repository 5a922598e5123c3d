"""stressvae: stress-test trading strategies on synthetic markets.

The public API lives here and nowhere else. Heavy optional parts (vectorbt,
arch, matplotlib) are imported where they are used, never at package import.
"""

from ._version import __version__
from .native import NativeInputError, native_info, sample_latent

__all__ = ["NativeInputError", "__version__", "native_info", "sample_latent"]
