"""Unit tests of the ttrpc implementation: frames, envelope, server, client, generated code."""
