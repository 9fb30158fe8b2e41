"""A schedule's settable fields are defined once (`core.schedule.SETTABLE_FIELDS` over the
`Schedule` dataclass); the book's options, set templates, API models and CLI follow it."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from taskyard.cli.schedules import add as cli_add
from taskyard.core.schedule import (
    DEFINITION_FIELDS,
    NULLABLE_FIELDS,
    SETTABLE_DEFAULTS,
    SETTABLE_FIELDS,
    Schedule,
)
from taskyard.http.api.schemas import ScheduleCreate, ScheduleOut, SchedulePatch
from taskyard.schedules import OPTIONS, TEMPLATE_OMITS, ScheduleTemplate


def test_settable_fields_are_fields_of_schedule_with_their_defaults() -> None:
    schedule_fields = {f.name: f for f in dataclasses.fields(Schedule)}
    assert set(SETTABLE_FIELDS) <= set(schedule_fields)
    assert set(SETTABLE_FIELDS) <= set(DEFINITION_FIELDS)
    for name in SETTABLE_FIELDS:
        default = schedule_fields[name].default
        assert SETTABLE_DEFAULTS[name] == (None if default is dataclasses.MISSING else default)
    assert set(NULLABLE_FIELDS) == {
        "cron", "every", "payload", "queue", "priority", "misfire_grace", "owner",
    }


def test_book_options_are_the_settable_fields() -> None:
    options = dict(OPTIONS)
    assert options == dict(SETTABLE_DEFAULTS)
    assert list(options) == list(SETTABLE_FIELDS)


def test_set_templates_have_every_settable_field_but_owner_and_enabled() -> None:
    fields = {f.name: f for f in dataclasses.fields(ScheduleTemplate)}
    assert set(fields) == {"key"} | (set(SETTABLE_FIELDS) - set(TEMPLATE_OMITS))
    for name, field in fields.items():
        if name not in ("key", "task"):
            assert field.default == SETTABLE_DEFAULTS[name], name


def test_api_models_cover_every_settable_field() -> None:
    assert set(ScheduleCreate.model_fields) == {"name", *SETTABLE_FIELDS}
    assert set(SchedulePatch.model_fields) == set(SETTABLE_FIELDS)
    assert set(SETTABLE_FIELDS) <= set(ScheduleOut.model_fields)
    for name in SETTABLE_FIELDS:
        default = ScheduleCreate.model_fields[name].default
        expected = PydanticUndefined if name == "task" else SETTABLE_DEFAULTS[name]
        assert default == expected, name


@pytest.mark.parametrize("name", SETTABLE_FIELDS)
def test_patch_takes_null_exactly_for_the_nullable_fields(name: str) -> None:
    if name in NULLABLE_FIELDS:
        assert SchedulePatch.model_validate({name: None}).model_fields_set == {name}
    else:
        with pytest.raises(ValidationError, match="must not be null"):
            SchedulePatch.model_validate({name: None})


def test_cli_add_takes_every_settable_field_but_enabled() -> None:
    # A schedule is added enabled; `taskyard schedules pause` disables it.
    params = set(inspect.signature(cli_add).parameters)
    assert set(SETTABLE_FIELDS) - {"enabled"} <= params
