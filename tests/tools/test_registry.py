from __future__ import annotations

from genevolve_async.tools import ImageRegistry


def test_ids_count_up_and_same_image_keeps_its_id() -> None:
    registry = ImageRegistry()
    a = registry.register(local_path="/a.png", url="http://x/a")
    b = registry.register(local_path="/b.png", url="http://x/b")
    again_by_path = registry.register(local_path="/a.png", url="http://other")
    again_by_url = registry.register(local_path="/elsewhere.png", url="http://x/b")
    assert (a.img_id, b.img_id) == ("IMG_001", "IMG_002")
    assert again_by_path is a and again_by_url is b
    assert len(registry) == 2
    assert registry.get("IMG_002") is b and registry.get("IMG_003") is None
    assert [r.img_id for r in registry] == ["IMG_001", "IMG_002"]
