"""qemu drives QEMU's ``microvm`` machine: command line, accelerator, QMP, lifecycle."""
