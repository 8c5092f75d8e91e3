"""The local Airtable-compatible server (SPEC §3.5): formulas, storage, HTTP app, faults."""
