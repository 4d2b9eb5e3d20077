"""Reading and writing files safely: rows with line numbers (tabular), the one bounded YAML
loader, prompt templates, output paths and short quotes of file content."""

from judgecal.io.yamlfile import MAX_DEPTH, MAX_NODES, YamlDocument, load_yaml
from judgecal.messages import EXCERPT_CHARS, excerpt, field_text, validator_text  # re-exported

__all__ = [
    "EXCERPT_CHARS",
    "MAX_DEPTH",
    "MAX_NODES",
    "YamlDocument",
    "excerpt",
    "field_text",
    "load_yaml",
    "validator_text",
]
