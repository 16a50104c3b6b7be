"""Secrets out of what dlx logs and prints: passwords and tokens in URLs (a tracking URI such as
http://user:PASSWORD@host, ?token=..., Databricks dapi... tokens) become ***. No mlflow import:
the CLI redacts its error lines with this too."""

from __future__ import annotations

import re
from typing import Any

MAX_PARAM = 6000  # MLflow's limit on one param value

_SECRETS = (
    (re.compile(r"(?P<keep>[a-zA-Z][\w+.-]*://[^/\s:@]*:)[^/\s]+(?=@)"), r"\g<keep>***"),
    (re.compile(r"(?i)(?P<keep>[?&;](?:access_)?(?:token|password|passwd|secret|api_?key|key|"
                r"sig|signature)=)[^&#\s]+"), r"\g<keep>***"),
    (re.compile(r"\bdapi[0-9a-f]{32}(-\d+)?\b"), "dapi***"),
)


def redact(text: str) -> str:
    """`text` with the secrets of any URL in it replaced by ***."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def redacted(values: dict[str, Any]) -> dict[str, str]:
    """Params or tags as MLflow stores them (strings, at most MAX_PARAM long), secrets redacted."""
    return {k: redact(str(v))[:MAX_PARAM] for k, v in values.items()}
