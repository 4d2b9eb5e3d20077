"""judgecal — keep LLM-as-judge graders honest.

Replays a human-labelled calibration set through a judge, measures agreement with
the humans, detects drift against an accepted baseline and records incidents.

The package import is deliberately light: heavy libraries (pandas, numpy,
scikit-learn, openai, matplotlib) are imported inside the functions that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
