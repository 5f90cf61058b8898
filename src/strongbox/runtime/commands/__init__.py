"""commands holds one module per verb group; each only parses and delegates."""
