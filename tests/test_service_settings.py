"""Settings: one typed object read from the environment over an optional TOML file
over the defaults; bad values are errors naming the variable and the value; each
value knows where it came from; ``noteloom config`` shows them all."""

import json
import os
import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from service import wiring
from service.settings import CONFIG_ENV, Settings, SettingsError, declared, describe, load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_has_a_variable_a_help_line_and_a_default_source():
    settings = load_settings({})
    envs = [f.metadata["env"] for f in declared()]
    assert len(envs) == len(set(envs)) and all(e == "OMP_WAIT_POLICY" or e.startswith("NOTELOOM_") for e in envs)
    assert all(f.metadata["help"] for f in declared())
    assert {settings.source(f.name) for f in declared()} == {"default"}
    assert settings == Settings()


def test_values_are_typed_and_remember_their_variable():
    env = {"NOTELOOM_THREADS": "3", "NOTELOOM_DOCUMENT_SECONDS": "2.5", "NOTELOOM_ATTENTION_SLICING": "yes",
           "NOTELOOM_SD_LORA": os.pathsep.join(["a.safetensors", "", "b.safetensors"]), "NOTELOOM_DATA": "/srv/notes",
           "NOTELOOM_CLIP_PRETRAINED": "", "NOTELOOM_MAX_PDF_PAGES": "20000", "OMP_WAIT_POLICY": "active"}
    s = load_settings(env)
    assert (s.threads, s.document_seconds, s.attention_slicing, s.sd_lora) == (3, 2.5, True, ("a.safetensors", "b.safetensors"))
    assert s.data_dir == Path("/srv/notes") and s.max_pdf_pages == 20000 and s.omp_wait_policy == "ACTIVE"
    assert s.clip_pretrained is None  # empty means random weights, not the default "openai"
    assert s.source("threads") == "env NOTELOOM_THREADS" and s.source("encode_threads") == "default"


def test_an_empty_variable_counts_as_unset_where_empty_has_no_meaning():
    s = load_settings({"NOTELOOM_THREADS": "", "NOTELOOM_EMBEDDING_MODEL": " ", "NOTELOOM_DATA": ""})
    assert s == Settings() and s.source("threads") == "default"


@pytest.mark.parametrize("name,value,expected", [
    ("NOTELOOM_THREADS", "two", "a positive integer"),
    ("NOTELOOM_THREADS", "0", "a positive integer"),
    ("NOTELOOM_MAX_PDF_PAGES", "none", "a positive integer"),
    ("NOTELOOM_MAX_PDF_SECONDS", "-1", "a positive number"),
    ("NOTELOOM_MAX_PDF_SECONDS", "nan", "a positive number"),
    ("NOTELOOM_INGEST_WORKERS", "17", "a whole number from 1 to 16"),
    ("NOTELOOM_HEADER_SECONDS", "0", "a number over 0 and at most 3600"),
    ("NOTELOOM_ALLOW_DOWNLOADS", "maybe", "a yes/no flag"),
    ("OMP_WAIT_POLICY", "spin", "one of PASSIVE, ACTIVE"),
    ("NOTELOOM_ADMISSION", "chat=1/2/3", "class=running/queued/wait"),
    ("NOTELOOM_SD_MODEL", "a\x00b", "text"),
])
def test_a_bad_value_names_the_variable_and_quotes_the_value(name, value, expected):
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    assert str(caught.value).startswith(f"{name} must be {expected}") and f"got {value!r}" in str(caught.value)


def test_every_bad_value_is_reported_at_once():
    with pytest.raises(SettingsError) as caught:
        load_settings({"NOTELOOM_THREADS": "x", "NOTELOOM_MAX_TAGS": "-3", "NOTELOOM_VAE_SLICING": "2"})
    lines = str(caught.value).splitlines()
    assert [line.split()[0] for line in lines] == ["NOTELOOM_THREADS", "NOTELOOM_VAE_SLICING", "NOTELOOM_MAX_TAGS"]


def test_the_config_file_sits_between_the_defaults_and_the_environment(tmp_path):
    config = tmp_path / "noteloom.toml"
    config.write_text('threads = 3\nsd_lora = ["a.pt", "b.pt"]\nllm_url = "http://localhost:1/v1"\nmax_pdf_seconds = 5\n'
                      'attention_slicing = true\n', encoding="utf-8")
    s = load_settings({"NOTELOOM_THREADS": "7"}, config_file=config)
    assert s.threads == 7 and s.source("threads") == "env NOTELOOM_THREADS"
    assert s.sd_lora == ("a.pt", "b.pt") and s.max_pdf_seconds == 5.0 and s.attention_slicing is True
    assert s.source("llm_url") == f"config {config}" and s.source("data_dir") == "default"
    assert load_settings({CONFIG_ENV: str(config)}).llm_url == "http://localhost:1/v1"  # chosen by the variable too


@pytest.mark.parametrize("text,message", [
    ("treads = 3\n", "unknown setting 'treads'; did you mean 'threads'?"),
    ("threads = \n", "is not valid TOML"),
    ("threads = true\n", "threads must be a positive integer, got True"),
    ("threads = 2.5\n", "threads must be a positive integer, got 2.5"),
    ("max_pdf_pages = 0\n", "max_pdf_pages must be a positive integer, got 0"),
])
def test_config_file_problems_name_the_file_and_the_key(tmp_path, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError, match=re.escape(message)) as caught:
        load_settings({}, config_file=config)
    assert str(config) in str(caught.value)


def test_a_missing_config_file_is_an_error(tmp_path):
    with pytest.raises(SettingsError, match="config file .*missing.toml: No such file"):
        load_settings({CONFIG_ENV: str(tmp_path / "missing.toml")})


def test_the_command_line_wins_and_says_so():
    s = load_settings({"NOTELOOM_DATA": "/env"}).override("command line --data", data_dir=Path("/cli"), threads=None)
    assert s.data_dir == Path("/cli") and s.source("data_dir") == "command line --data" and s.source("threads") == "default"


def test_secrets_are_never_shown():
    rows = {row["name"]: row for row in describe(load_settings({"NOTELOOM_API_KEY": "sk-123", "NOTELOOM_LLM_KEY": "sk-456"}))}
    assert rows["api_key"]["value"] == rows["llm_key"]["value"] == "(set, hidden)"
    assert "sk-" not in json.dumps(list(rows.values()))


# --- wiring: settings reach the library objects ----------------------------------------


def test_every_load_limit_is_a_setting_with_the_librarys_default():
    from ingest.loaders import DEFAULT_LIMITS, LoadLimits

    assert wiring.load_limits(Settings()) == DEFAULT_LIMITS
    raised = wiring.load_limits(load_settings({f"NOTELOOM_{f.name.upper()}": "7" for f in fields(LoadLimits)}))
    assert all(getattr(raised, f.name) == 7 for f in fields(LoadLimits))


def test_generation_and_scoring_settings_reach_their_library_settings():
    s = load_settings({"NOTELOOM_SD_MODEL": "/m", "NOTELOOM_SD_TEXTUAL_INVERSION": os.pathsep.join(["a.pt=<cat>", "b.pt"]),
                       "NOTELOOM_DEVICE": "cpu", "NOTELOOM_CPU_OFFLOAD": "1", "NOTELOOM_CLIP_MODEL": "ViT-B-32",
                       "NOTELOOM_CLIP_PRETRAINED": "", "NOTELOOM_ALLOW_DOWNLOADS": "true"})
    sd = wiring.diffusers_settings(s)
    assert (sd.model, sd.device, sd.cpu_offload, sd.allow_downloads) == ("/m", "cpu", True, True)
    assert sd.textual_inversion == [("a.pt", "<cat>"), ("b.pt", None)]
    assert wiring.diffusers_settings(s, model="/other").model == "/other"
    clip = wiring.clip_settings(s)
    assert (clip.model, clip.pretrained, clip.device, clip.allow_downloads) == ("ViT-B-32", None, "cpu", True)


def test_answers_use_the_chat_endpoint_only_when_a_url_is_set():
    from retrieval import LLMConfig

    assert wiring.llm_endpoint(Settings()) is None
    s = load_settings({"NOTELOOM_LLM_URL": "http://x/v1", "NOTELOOM_LLM_KEY": "k"})
    assert wiring.llm_endpoint(s) == LLMConfig("http://x/v1", "gpt-4o-mini", "k")


def test_a_new_data_folder_takes_the_embedding_model_setting(tmp_path):
    s = load_settings({"NOTELOOM_EMBEDDING_MODEL": "my-model"})
    nb = wiring.notebook(s, tmp_path / "data")
    try:
        assert nb.embedding_model == "my-model" and nb.folder == tmp_path / "data"
    finally:
        nb.close()


def test_only_the_settings_module_reads_the_environment():
    readers = [p.name for p in (ROOT / "service").glob("*.py")
               if p.name != "settings.py" and re.search(r"os\.environ|getenv\(", p.read_text(encoding="utf-8"))]
    assert readers == []


# --- noteloom config ----------------------------------------------------------------------


def noteloom(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, timeout=120,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(ROOT), **env})


def test_noteloom_config_shows_each_value_and_its_source(tmp_path):
    config = tmp_path / "n.toml"
    config.write_text('clip_model = "ViT-B-32"\n', encoding="utf-8")
    r = noteloom("--data", str(tmp_path / "d"), "--config", str(config), "config", env={"NOTELOOM_THREADS": "3"})
    assert r.returncode == 0, r.stderr
    lines = {line.split()[0]: line for line in r.stdout.splitlines()}
    assert set(lines) == {f.name for f in declared()}
    assert re.match(r"threads +3 +env NOTELOOM_THREADS +NOTELOOM_THREADS: ", lines["threads"])
    assert re.match(rf"clip_model +ViT-B-32 +config {re.escape(str(config))} ", lines["clip_model"])
    assert re.match(rf"data_dir +{re.escape(str(tmp_path / 'd'))} +command line --data ", lines["data_dir"])
    assert re.match(r"sd_model +\(none\) +default ", lines["sd_model"])
    rows = json.loads(noteloom("config", "--json", env={"NOTELOOM_API_KEY": "secret"}).stdout)
    api_key = next(row for row in rows if row["name"] == "api_key")
    assert api_key == {"name": "api_key", "value": "(set, hidden)", "source": "env NOTELOOM_API_KEY", "env": "NOTELOOM_API_KEY",
                       "help": api_key["help"]}


def test_a_bad_setting_stops_any_command_with_exit_2(tmp_path):
    r = noteloom("config", env={"NOTELOOM_INGEST_WORKERS": "many"})
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == "noteloom: error: NOTELOOM_INGEST_WORKERS must be a whole number from 1 to 16, got 'many'"
    r = noteloom("--config", str(tmp_path / "none.toml"), "chunk", "-", env={})
    assert r.returncode == 2 and "none.toml" in r.stderr
