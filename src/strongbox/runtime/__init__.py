"""runtime is strongbox's command line: runc's verbs plus strongbox's own ``guest`` tools."""
