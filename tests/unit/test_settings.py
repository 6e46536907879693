"""Settings.from_env: each field from its variable, converted to the field's type; a bad value stops."""

from __future__ import annotations

import pytest

from clinicpay.settings import Settings


def test_each_field_comes_from_its_variable_as_its_type(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_TABLE", "Appointments-prod")
    monkeypatch.setenv("PROVIDER_TIMEOUT_SECONDS", "6.5")
    monkeypatch.setenv("PUBLIC_WRITES_PER_CLIENT", "12")
    monkeypatch.setenv("KEYS_TABLE", "")  # empty: the default stays
    monkeypatch.setenv("CLINICPAY_OPERATOR_KEY", "op_local")
    settings = Settings.from_env()
    assert settings.app_table == "Appointments-prod"
    assert settings.provider_timeout_seconds == 6.5
    assert settings.public_writes_per_client == 12 and isinstance(settings.public_writes_per_client, int)
    assert settings.keys_table == "KeysTable"
    assert settings.operator_key == "op_local"


def test_a_value_not_of_its_fields_type_stops_the_container(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PUBLIC_WINDOW_SECONDS", "ten minutes")
    with pytest.raises(ValueError, match="PUBLIC_WINDOW_SECONDS must be an integer"):
        Settings.from_env()


def test_settings_cannot_change_once_read() -> None:
    with pytest.raises(AttributeError):
        Settings().app_table = "Other"  # type: ignore[misc]
