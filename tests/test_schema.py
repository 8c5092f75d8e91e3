"""The schema file: loading, name mapping, and the local refusal of bad writes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from jobtrack_airtable.errors import ConfigError, SchemaViolationError
from jobtrack_airtable.schema import default_schema_path, load_schema
from jobtrack_airtable.transport.codec import codec_for


@pytest.fixture
def schema():
    return load_schema()


def test_default_schema_matches_spec_tables(schema) -> None:
    assert schema.jobs.name == "Job Tracking"
    assert schema.client_runs.name == "Client Run Results"
    assert schema.jobs.key_name == "Run ID"
    assert schema.client_runs.key_name == "Run ID"
    assert schema.client_runs.name_of("profiles_examined") == "Profiles Examined for Scoring"
    assert schema.jobs.name_of("profiles_examined") == "Total Profiles Examined"
    assert schema.client_runs.field("status").options == (
        "Running",
        "Completed",
        "Failed",
        "No Leads To Score",
    )


def test_computed_fields_are_marked(schema) -> None:
    computed_jobs = {f.name for f in schema.jobs.enabled_fields() if f.computed}
    computed_crr = {f.name for f in schema.client_runs.enabled_fields() if f.computed}
    assert computed_jobs == {"Duration", "Total Tokens Used"}
    assert computed_crr == {
        "Duration",
        "Profile Scoring Success Rate",
        "Post Scoring Success Rate",
    }


def test_default_schema_file_is_found(schema) -> None:
    assert default_schema_path().is_file()


def test_valid_write_passes(schema) -> None:
    codec_for(schema.client_runs).check_names(
        {
            "Run ID": "250930-141522-Guy-Wilson",
            "Client ID": "Guy-Wilson",
            "Status": "Completed",
            "Profiles Examined for Scoring": 10,
            "Apify API Costs": 1.25,
            "Start Time": "2025-09-30T14:15:22.000Z",
            "Error Details": None,  # clearing is allowed
        }
    )


def test_every_problem_is_listed_in_one_error(schema) -> None:
    with pytest.raises(SchemaViolationError) as info:
        codec_for(schema.client_runs).check_names(
            {
                "Success Rate": 1,
                "Duration": 3,
                "Status": "Done",
                "Apify API Costs": "1.20",
                "Profiles Examined for Scoring": True,
                "Posts Examined for Scoring": math.nan,
                "Client ID": 5,
            }
        )
    err = info.value
    assert err.table == "Client Run Results"
    assert len(err.problems) == 7
    text = str(err)
    for fragment in (
        "unknown field 'Success Rate'",
        "'Duration' is computed",
        "'Done' is not an option of 'Status'",
        "'Apify API Costs' takes a number, not '1.20'",
        "not True",
        "cannot hold nan",
        "'Client ID' takes a string, not 5",
    ):
        assert fragment in text


def test_disabled_optional_fields_are_unknown_and_dropped(tmp_path: Path) -> None:
    text = default_schema_path().read_text()
    text = text.replace(
        'name = "Clients Processed"\ntype = "number"\nprecision = 0\noptional = true',
        'name = "Clients Processed"\ntype = "number"\nprecision = 0\noptional = true\n'
        "enabled = false",
    )
    path = tmp_path / "schema.toml"
    path.write_text(text)
    schema = load_schema(path)
    assert not schema.jobs.has("clients_processed")
    assert codec_for(schema.jobs).names({"clients_processed": 3, "stream": 1}) == {"Stream": 1}
    with pytest.raises(SchemaViolationError, match="unknown field 'Clients Processed'"):
        codec_for(schema.jobs).check_names({"Clients Processed": 3})
    with pytest.raises(ConfigError, match="no enabled field 'clients_processed'"):
        schema.jobs.name_of("clients_processed")


def test_renamed_field_is_addressed_by_its_new_name(tmp_path: Path) -> None:
    text = (
        default_schema_path()
        .read_text()
        .replace('name = "Profiles Examined for Scoring"', 'name = "Profiles Seen"')
    )
    path = tmp_path / "schema.toml"
    path.write_text(text)
    schema = load_schema(path)
    assert schema.client_runs.name_of("profiles_examined") == "Profiles Seen"
    assert codec_for(schema.client_runs).keys({"Profiles Seen": 4, "Other": 1}) == {
        "profiles_examined": 4
    }


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("tables = [", "not valid TOML"),
        ('[tables.jobs]\nname = "J"\nnatural_key = "run_id"\n[tables.jobs.fields]\n', "invalid"),
        (json.dumps({}).replace("{}", ""), "invalid"),
    ],
)
def test_bad_schema_files_are_config_errors(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        load_schema(path)
    assert str(path) in str(info.value)


def test_missing_schema_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_schema(tmp_path / "nope.toml")
