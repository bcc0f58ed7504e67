"""attnkata: learn attention by doing, checked by pytest.

The public front door for pack authors: the kata model, the ``check`` decorator and
the pluggy ``hookimpl`` marker.  Everything else lives in small private modules.
"""

import pluggy

from .model import Check, Claim, Fake, Kata, Misconception, Pack, Prediction, check

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("attnkata")

__all__ = ["Check", "Claim", "Fake", "Kata", "Misconception", "Pack", "Prediction",
           "check", "hookimpl", "__version__"]
