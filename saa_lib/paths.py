"""Where the workbook keeps its files: :func:`saa_home` (weights, stage cache, hash records). Imports nothing of the
package."""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs


def saa_home() -> Path:
    """Root of the workbook's cache: ``$SAA_HOME``, else the platform cache dir (e.g. ``~/.cache/saa-workbook``)."""
    env = os.environ.get("SAA_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("saa-workbook"))
