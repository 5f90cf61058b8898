"""Shared test machinery: run the CLI, find processes, build tiny initrds."""
