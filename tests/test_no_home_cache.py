"""The suite keeps its caches in a temporary folder, never under ~/.cache."""

from __future__ import annotations

import os
from pathlib import Path

from genevolve_async.tools import ImageCacheSettings
from genevolve_async.tools._image_settings import default_image_dir

from .conftest import CACHE_VARIABLES, SESSION_CACHE


def test_every_default_cache_folder_points_into_the_session_folder() -> None:
    home_cache = (Path.home() / ".cache").resolve()
    for name, folder in CACHE_VARIABLES.items():
        assert os.environ[name] == str(folder), name
        resolved = folder.resolve()
        assert resolved.is_relative_to(SESSION_CACHE.resolve())
        assert not resolved.is_relative_to(home_cache), name
    image_dir = default_image_dir().resolve()
    assert image_dir.is_relative_to(SESSION_CACHE.resolve())
    assert not image_dir.is_relative_to(home_cache)
    resolved_settings = ImageCacheSettings().resolve()
    assert Path(str(resolved_settings.folder)).resolve() == image_dir
