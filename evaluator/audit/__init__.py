"""Tools for auditors: semantic diff with witnesses, impact, verify, version history."""
