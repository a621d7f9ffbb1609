"""Helpers shared by the test tiers (kept out of the tiers' own directories)."""
