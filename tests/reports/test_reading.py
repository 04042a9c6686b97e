"""The families the reports read are the daemon's: `load_families` (no sketches, no origins) rebuilds the same
families, members and links as `load_lineage`, and as the live lineage that wrote them."""

from __future__ import annotations

import pytest

from kamiyo.storage.lineage import load_lineage
from kamiyo.storage.reading import load_families

pytestmark = pytest.mark.npm


async def test_reader_families_are_the_daemons(world, engine):
    reader = await load_families(engine)
    daemon = await load_lineage(engine, with_index=False)
    assert list(reader.classes) == list(daemon.classes) == list(world.lineage.classes)
    for key in reader.classes:
        assert reader.family(key) == daemon.family(key) == world.lineage.family(key)
        assert reader.members(key) == daemon.members(key)
        assert sorted((l.a, l.b, l.relation, l.similarity) for l in reader.links_of(key)) == \
            sorted((l.a, l.b, l.relation, l.similarity) for l in daemon.links_of(key))
        assert reader.classes[key].sketch is None and reader.classes[key].kind == daemon.classes[key].kind
    assert len({reader.family(k) for k in reader.classes}) < len(reader.classes)  # some classes did join up
