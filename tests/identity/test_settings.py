from __future__ import annotations

from pathlib import Path

import pytest

from tether.errors import SettingsError
from tether.settings import load_settings


def test_defaults_pick_the_embedded_engines(tmp_path: Path) -> None:
    s = load_settings(config_file=tmp_path / "absent.toml", environ={})
    assert s.data_dir == Path(".tether")
    assert s.resolved_entity_url() == "sqlite:///.tether/entity.sqlite"
    assert s.resolved_keys_url() == "file:.tether/keys"
    assert s.resolved_firmware_keys_url() != s.resolved_keys_url()


def test_layers_override_in_order(tmp_path: Path) -> None:
    cfg = tmp_path / "tether.toml"
    cfg.write_text('data_dir = "from-file"\n[http]\nport = 9000\n[mqtt]\nport = 9001\n')
    env = {"TETHER_HTTP__PORT": "9100", "TETHER_MQTT__HOSTNAMES": "[a.example, b.example]"}
    s = load_settings({"http": {"port": 9200}}, config_file=cfg, environ=env)
    assert s.data_dir == Path("from-file")  # file beats default
    assert s.mqtt.port == 9001
    assert s.mqtt.hostnames == ["a.example", "b.example"]  # environment beats default
    assert s.http.port == 9200  # explicit beats environment beats file
    assert load_settings(config_file=cfg, environ=env).http.port == 9100


def test_errors_name_the_key_and_its_environment_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(config_file=tmp_path / "x.toml", environ={"TETHER_HTTP__PORT": "eighty"})
    assert "'http.port'" in str(err.value)
    assert "TETHER_HTTP__PORT" in str(err.value)


def test_unknown_keys_are_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "tether.toml"
    cfg.write_text("[mqtt]\nprot = 1\n")
    with pytest.raises(SettingsError, match=r"mqtt\.prot"):
        load_settings(config_file=cfg, environ={})


def test_broken_toml_and_missing_named_config(tmp_path: Path) -> None:
    cfg = tmp_path / "tether.toml"
    cfg.write_text("[http\n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(config_file=cfg, environ={})
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(environ={"TETHER_CONFIG": str(tmp_path / "nope.toml")})
