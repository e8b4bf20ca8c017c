from __future__ import annotations

from genevolve_async.tools import ImageRegistry


def test_ids_count_up_and_same_url_keeps_its_id() -> None:
    registry = ImageRegistry()
    a = registry.register(local_path="/a.png", url="http://x/a")
    b = registry.register(local_path="/b.png", url="http://x/b")
    again_by_url = registry.register(local_path="/elsewhere.png", url="http://x/b")
    assert (a.img_id, b.img_id) == ("IMG_001", "IMG_002")
    assert again_by_url is b
    assert len(registry) == 2
    assert registry.get("IMG_002") is b and registry.get("IMG_003") is None
    assert [r.img_id for r in registry] == ["IMG_001", "IMG_002"]


def test_two_urls_sharing_one_cached_file_get_two_ids() -> None:
    # A mirror and its CDN serve identical bytes: the content-addressed cache
    # stores one file, the policy still sees one id per listed result.
    registry = ImageRegistry()
    ids = [
        registry.register(local_path=path, url=url).img_id
        for url, path in [
            ("http://mirror/a.jpg", "/cache/same.jpg"),
            ("http://cdn/a.jpg", "/cache/same.jpg"),
            ("http://x/b.jpg", "/cache/b.jpg"),
        ]
    ]
    assert ids == ["IMG_001", "IMG_002", "IMG_003"]
    assert registry.get("IMG_002").local_path == "/cache/same.jpg"  # type: ignore[union-attr]
    registry.discard("/cache/same.jpg")  # the shared file was lost: both lose it
    assert [r.img_id for r in registry] == ["IMG_003"]
    again = registry.register(local_path="/cache/same.jpg", url="http://cdn/a.jpg")
    assert again.img_id == "IMG_002" and registry.get("IMG_002") is again


def test_images_without_a_url_are_keyed_by_path() -> None:
    registry = ImageRegistry()
    a = registry.register(local_path="/a.png")
    assert registry.register(local_path="/a.png") is a
    assert registry.register(local_path="/b.png").img_id == "IMG_002"
