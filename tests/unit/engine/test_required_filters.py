"""Every filter is mandatory: an engine or a worker without one refuses to start."""

from __future__ import annotations

import pytest

from workers.engine import pipeline


@pytest.fixture
def missing_filter(monkeypatch):
    monkeypatch.setattr(pipeline, "REQUIRED_FILTERS",
                        (*pipeline.REQUIRED_FILTERS, ("workers.engine.filters.nowhere", "Gone")))


def test_all_required_filters_load():
    names = [cls.__name__ for cls in pipeline.required_filter_classes()]
    assert names == ["MedicalFilter", "SelfHarmFilter", "HarassmentFilter"]


def test_an_engine_without_a_filter_refuses_to_build(missing_filter):
    with pytest.raises(pipeline.FilterUnavailable, match="nowhere"):
        pipeline.Engine()


def test_a_worker_without_a_filter_refuses_to_start(missing_filter, settings):
    from workers.celery_app import make_celery

    with pytest.raises(pipeline.FilterUnavailable, match="nowhere"):
        make_celery(settings)
